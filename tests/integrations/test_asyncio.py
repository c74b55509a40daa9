"""The asyncio integration on real event loops: reported, chained, never swallowing."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import Any

import pytest

import tripwire
from tripwire.integrations.asyncio import AsyncioIntegration
from tripwire.reporters.capture import CapturedEvents

from .conftest import run_python

Start = Callable[..., CapturedEvents]


def exception_types(events: CapturedEvents) -> list[str]:
    return [e["exception"]["values"][-1]["type"] for e in events if "exception" in e]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def asyncio_log() -> Any:
    """What asyncio's default exception handler logs (it logs to the 'asyncio' logger)."""
    handler = Records()
    log = logging.getLogger("asyncio")
    log.addHandler(handler)
    yield handler
    log.removeHandler(handler)


def test_task_exception_never_retrieved_is_reported(start: Start, asyncio_log: Records) -> None:
    """A task that fails and is never awaited is reported (mechanism asyncio, unhandled) and logged."""
    events = start(disabled_integrations=["logging"])

    async def fails() -> None:
        raise ValueError("lost in a task")

    async def main() -> None:
        asyncio.get_running_loop().create_task(fails())
        await asyncio.sleep(0.01)

    asyncio.run(main())
    gc.collect()  # the "never retrieved" report happens when the task is collected
    tripwire.flush(5)
    (event,) = events
    value = event["exception"]["values"][-1]
    assert value["type"] == "ValueError"
    assert value["mechanism"] == {"type": "asyncio", "handled": False}
    assert event["contexts"]["asyncio"]["message"] == "Task exception was never retrieved"
    assert any("never retrieved" in m for m in asyncio_log.messages)  # default handler still ran


def test_callback_exception_is_reported(start: Start, asyncio_log: Records) -> None:
    """An exception in a loop.call_soon callback is reported and still logged by asyncio."""
    events = start(disabled_integrations=["logging"])

    def callback() -> None:
        raise KeyError("in callback")

    async def main() -> None:
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    tripwire.flush(5)
    assert exception_types(events) == ["KeyError"]
    assert any(m.startswith("Exception in callback") for m in asyncio_log.messages)


def test_custom_handler_is_chained_and_gets_contexts_without_exception(start: Start) -> None:
    """A handler set with set_exception_handler sees every context; only exceptions are reported."""
    events = start()
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        loop.call_exception_handler({"message": "unclosed resource"})
        loop.call_exception_handler({"message": "bad", "exception": OSError("io")})

    asyncio.run(main())
    tripwire.flush(5)
    assert [c["message"] for c in seen] == ["unclosed resource", "bad"]
    assert exception_types(events) == ["OSError"]


def test_context_without_exception_reaches_default_handler(start: Start, asyncio_log: Records) -> None:
    """With no custom handler, a context without an exception is logged by asyncio as before."""
    events = start(disabled_integrations=["logging"])

    async def main() -> None:
        asyncio.get_running_loop().call_exception_handler({"message": "transport was not closed"})

    asyncio.run(main())
    tripwire.flush(5)
    assert "transport was not closed" in asyncio_log.messages
    assert list(events) == []


def test_same_exception_from_loop_and_logging_is_reported_once(start: Start) -> None:
    """The loop handler reports, asyncio's logger.error carries the same exception: one event."""
    events = start()

    def callback() -> None:
        raise RuntimeError("once")

    async def main() -> None:
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    tripwire.flush(5)
    assert exception_types(events) == ["RuntimeError"]
    assert events[0]["exception"]["values"][-1]["mechanism"]["type"] == "asyncio"


def test_capture_tasks_reports_failures_even_if_awaited_and_keeps_the_exception(start: Start) -> None:
    """capture_tasks=True reports a failing task; the awaiting code gets the very same exception."""
    events = start(integrations=[AsyncioIntegration(capture_tasks=True)])
    error = ZeroDivisionError("in task")
    caught: list[BaseException] = []

    async def fails() -> None:
        raise error

    async def main() -> None:
        try:
            await asyncio.create_task(fails())
        except ZeroDivisionError as exc:
            caught.append(exc)

    asyncio.run(main())
    tripwire.flush(5)
    assert caught == [error]
    assert exception_types(events) == ["ZeroDivisionError"]
    assert events[0]["exception"]["values"][-1]["mechanism"]["type"] == "asyncio.task"


def test_tasks_are_not_reported_by_default_when_handled(start: Start) -> None:
    """Without capture_tasks, a task's exception that the app awaits and handles is not an event."""
    events = start()

    async def fails() -> None:
        raise ZeroDivisionError("handled")

    async def main() -> None:
        try:
            await asyncio.create_task(fails())
        except ZeroDivisionError:
            pass

    asyncio.run(main())
    tripwire.flush(5)
    assert list(events) == []


def test_close_restores_the_loop_class(start: Start) -> None:
    """After close(), BaseEventLoop.call_exception_handler is asyncio's own again."""
    original = asyncio.base_events.BaseEventLoop.call_exception_handler
    start()
    assert asyncio.base_events.BaseEventLoop.call_exception_handler is not original
    tripwire.close()
    assert asyncio.base_events.BaseEventLoop.call_exception_handler is original


def test_asyncio_is_patched_only_when_the_app_imports_it() -> None:
    """init() does not import asyncio; importing it afterwards installs the loop handler."""
    proc = run_python(
        """
        import sys, tripwire
        from tripwire.reporters.capture import CaptureReporter, CapturedEvents
        events = CapturedEvents()
        tripwire.init(reporters=[CaptureReporter(events)])
        print("after init:", "asyncio" in sys.modules)
        import asyncio
        def boom():
            raise ValueError("late import")
        async def main():
            asyncio.get_running_loop().call_soon(boom)
            await asyncio.sleep(0.01)
        asyncio.run(main())
        tripwire.flush(5)
        print("events:", [e["exception"]["values"][-1]["type"] for e in events])
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "after init: False" in proc.stdout
    assert "events: ['ValueError']" in proc.stdout


def test_uvloop_loops_are_covered_too(start: Start) -> None:
    """On uvloop's loop (what uvicorn picks when installed) loop errors are reported and chained."""
    uvloop = pytest.importorskip("uvloop")
    events = start()
    seen: list[str] = []

    async def fails() -> None:
        raise ValueError("uvloop task")

    def callback() -> None:
        raise KeyError("uvloop callback")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uvloop.Loop)
        loop.set_exception_handler(lambda _loop, context: seen.append(context["message"]))
        loop.create_task(fails())
        loop.call_soon(callback)
        loop.call_exception_handler({"message": "no exception here"})
        await asyncio.sleep(0.05)
        gc.collect()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    gc.collect()
    tripwire.flush(5)
    assert sorted(exception_types(events)) == ["KeyError", "ValueError"]
    assert "no exception here" in seen
    assert len(seen) == 3
    tripwire.close()
    assert "call_exception_handler" not in uvloop.Loop.__dict__
