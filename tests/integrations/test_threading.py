"""Scope propagation into threads, thread pools and run_in_executor."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import tripwire
from tripwire.integrations.threading import ThreadingIntegration
from tripwire.reporters.capture import CapturedEvents

Start = Callable[..., CapturedEvents]


def job(name: str) -> None:
    try:
        raise RuntimeError(name)
    except RuntimeError:
        tripwire.capture_exception()


def by_message(events: CapturedEvents) -> dict[str, dict[str, object]]:
    return {e["exception"]["values"][-1]["value"]: e for e in events}


def test_thread_started_in_a_request_carries_its_tags_and_user(start: Start) -> None:
    """An error in a thread started inside a unit of work has that unit's tags and user."""
    events = start()
    with tripwire.isolation_scope():
        tripwire.set_tag("request", "r-1")
        tripwire.set_user({"id": "42"})
        thread = threading.Thread(target=job, args=("from thread",))
        thread.start()
    thread.join()
    tripwire.flush(5)
    (event,) = events
    assert event["tags"]["request"] == "r-1"
    assert event["user"]["id"] == "42"


def test_thread_pool_work_carries_the_submitters_scope(start: Start) -> None:
    """ThreadPoolExecutor.submit runs the function with the scope of the code that submitted it."""
    events = start()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = []
        for request in ("a", "b", "c"):
            with tripwire.isolation_scope():
                tripwire.set_tag("request", request)
                futures.append(pool.submit(job, f"job-{request}"))
        for future in futures:
            future.result()
    tripwire.flush(5)
    seen = by_message(events)
    assert {k: v["tags"]["request"] for k, v in seen.items()} == {  # type: ignore[index]
        "job-a": "a",
        "job-b": "b",
        "job-c": "c",
    }


def test_run_in_executor_carries_the_tasks_scope(start: Start) -> None:
    """loop.run_in_executor (the default thread pool) sees the calling task's tags."""
    events = start()

    async def handle(request: str) -> None:
        with tripwire.isolation_scope():
            tripwire.set_tag("request", request)
            await asyncio.get_running_loop().run_in_executor(None, job, f"exec-{request}")

    async def main() -> None:
        await asyncio.gather(handle("x"), handle("y"))

    asyncio.run(main())
    tripwire.flush(5)
    seen = by_message(events)
    assert seen["exec-x"]["tags"]["request"] == "x"  # type: ignore[index]
    assert seen["exec-y"]["tags"]["request"] == "y"  # type: ignore[index]


def test_what_a_thread_sets_is_seen_by_the_unit_of_work_that_started_it(start: Start) -> None:
    """Thread and starter share one unit of work: a tag set in the thread shows on the starter's event."""
    events = start()
    with tripwire.isolation_scope():
        thread = threading.Thread(target=tripwire.set_tag, args=("set_in", "thread"))
        thread.start()
        thread.join()
        tripwire.capture_message("starter")
    tripwire.flush(5)
    assert events[0]["tags"]["set_in"] == "thread"


def test_propagation_can_be_turned_off(start: Start) -> None:
    """With propagate_scope=False threads start from the process scope, as without tripwire."""
    events = start(integrations=[ThreadingIntegration(propagate_scope=False)])
    start_method = threading.Thread.start
    with tripwire.isolation_scope():
        tripwire.set_tag("request", "r-2")
        thread = threading.Thread(target=job, args=("plain",))
        thread.start()
    thread.join()
    tripwire.flush(5)
    assert threading.Thread.start is start_method
    assert "request" not in events[0].get("tags", {})


def test_close_restores_thread_start_and_executor_submit(start: Start) -> None:
    """After close(), Thread.start and ThreadPoolExecutor.submit are the originals."""
    start_method, submit = threading.Thread.start, ThreadPoolExecutor.submit
    start()
    assert threading.Thread.start is not start_method
    assert ThreadPoolExecutor.submit is not submit
    tripwire.close()
    assert threading.Thread.start is start_method
    assert ThreadPoolExecutor.submit is submit
