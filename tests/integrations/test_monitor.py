"""@tripwire.monitor(), tripwire.capture() and application sessions for jobs and scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import tripwire
from tests.support.sink import Sink
from tripwire.reporters.capture import CapturedEvents

from .conftest import run_python

Start = Callable[..., CapturedEvents]


def test_monitor_reports_and_reraises_the_same_exception(start: Start) -> None:
    """A failing decorated job is reported (mechanism monitor, unhandled) and the caller gets it as is."""
    events = start()
    error = ValueError("bad row")
    error.__cause__ = KeyError("root cause")

    @tripwire.monitor()
    def nightly(rows: int) -> int:
        raise error

    with pytest.raises(ValueError) as info:
        nightly(3)
    assert info.value is error
    assert isinstance(info.value.__cause__, KeyError)
    tripwire.flush(5)
    (event,) = events
    assert event["exception"]["values"][-1]["mechanism"] == {"type": "monitor", "handled": False}
    assert event["transaction"].endswith("nightly")


def test_monitor_returns_results_and_keeps_metadata(start: Start) -> None:
    """A successful call returns its value and reports nothing; the wrapper keeps name and docstring."""
    events = start()

    @tripwire.monitor
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert add(2, 3) == 5
    assert add.__name__ == "add" and add.__doc__ == "Add two numbers."
    tripwire.flush(5)
    assert list(events) == []


def test_each_call_has_its_own_scope(start: Start) -> None:
    """Tags set inside one call never appear on another call's event or on the caller's scope."""
    events = start()

    @tripwire.monitor(name="job", tags={"queue": "default"})
    def job(item: str, fail: bool) -> None:
        tripwire.set_tag("item", item)
        if fail:
            raise RuntimeError(item)

    job("first", False)
    with pytest.raises(RuntimeError):
        job("second", True)
    tripwire.capture_message("outside")
    tripwire.flush(5)
    failed, outside = events
    assert failed["tags"] == {"queue": "default", "item": "second"}
    assert failed["transaction"] == "job"
    assert "item" not in outside.get("tags", {}) and "queue" not in outside.get("tags", {})


def test_async_functions_are_monitored(start: Start) -> None:
    """An async job is awaited inside its own scope and its exception is reported and re-raised."""
    events = start()

    @tripwire.monitor(name="fetch")
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        tripwire.set_tag("n", n)
        if n:
            raise LookupError(n)
        return n

    async def main() -> None:
        assert await fetch(0) == 0
        results = await asyncio.gather(fetch(1), fetch(2), return_exceptions=True)
        assert all(isinstance(r, LookupError) for r in results)

    asyncio.run(main())
    tripwire.flush(5)
    assert sorted(e["tags"]["n"] for e in events) == ["1", "2"]


def test_capture_block_reports_and_reraises(start: Start) -> None:
    """with tripwire.capture(): reports an escaping exception, re-raises it, and isolates the block."""
    events = start()
    with pytest.raises(ZeroDivisionError), tripwire.capture("import", tags={"file": "a.csv"}):
        tripwire.set_user({"id": "7"})
        1 / 0  # noqa: B018
    tripwire.capture_message("after")
    tripwire.flush(5)
    crashed, after = events
    assert crashed["tags"]["file"] == "a.csv"
    assert crashed["user"]["id"] == "7"
    assert "user" not in after


def test_nested_monitors_report_once(start: Start) -> None:
    """An exception escaping nested monitored calls is one event."""
    events = start()

    @tripwire.monitor()
    def inner() -> None:
        raise OSError("disk")

    @tripwire.monitor()
    def outer() -> None:
        inner()

    with pytest.raises(OSError):
        outer()
    tripwire.flush(5)
    assert len(events) == 1


def test_system_exit_and_keyboard_interrupt_are_not_reported(start: Start) -> None:
    """A job that calls sys.exit() or is interrupted is not an error."""
    events = start()
    for exc in (SystemExit(2), KeyboardInterrupt()):
        with pytest.raises(type(exc)), tripwire.capture():
            raise exc
    tripwire.flush(5)
    assert list(events) == []


def test_flush_true_delivers_before_a_hard_exit() -> None:
    """monitor(flush=True): the event is at the sink even if the process ends with os._exit."""
    with Sink() as sink:
        proc = run_python(
            f"""
            import os, tripwire
            tripwire.init({sink.dsn!r})
            @tripwire.monitor(flush=True)
            def job():
                raise RuntimeError("cron failed")
            try:
                job()
            except RuntimeError:
                os._exit(0)
            """
        )
        assert proc.returncode == 0, proc.stderr
        assert [e["exception"]["values"][-1]["value"] for e in sink.events] == ["cron failed"]


def session_updates(events: CapturedEvents) -> list[dict[str, Any]]:
    return [u for batch in events.sessions for u in batch.updates]


def test_application_session_counts_errors(start: Start) -> None:
    """start_session/end_session send one session update: errors counted, unhandled = crashed."""
    events = start(release="app@1")
    assert tripwire.start_session(did="worker-3")
    tripwire.capture_message("warning only", level="warning")
    try:
        raise ValueError("handled")
    except ValueError:
        tripwire.capture_exception()
    assert tripwire.end_session()
    tripwire.flush(5)
    (update,) = session_updates(events)
    assert update["status"] == "exited"
    assert update["errors"] == 1
    assert update["did"] == "worker-3"
    assert update["attrs"] == {"release": "app@1", "environment": "production"}
    assert update["duration"] >= 0


def test_sessions_need_a_release(start: Start) -> None:
    """Without a release there is no release health: start_session() returns False."""
    start()
    assert tripwire.start_session() is False
    assert tripwire.end_session() is False


def test_monitor_with_session_marks_a_crash(start: Start) -> None:
    """monitor(session=True): a failing call ends its session as crashed, a good one as exited."""
    events = start(release="app@2")

    @tripwire.monitor(session=True)
    def job(fail: bool) -> None:
        if fail:
            raise RuntimeError("job crashed")

    job(False)
    with pytest.raises(RuntimeError):
        job(True)
    tripwire.flush(5)
    assert [u["status"] for u in session_updates(events)] == ["exited", "crashed"]


def test_process_session_for_a_script_ends_exited_or_crashed() -> None:
    """ProcessSessionIntegration: a script that ends well sends 'exited', one that dies 'crashed'."""
    script = """
        import sys, tripwire
        from tripwire.integrations.session import ProcessSessionIntegration
        tripwire.init({dsn!r}, release="cli@1", integrations=[ProcessSessionIntegration()])
        if sys.argv[-1] == "crash":
            raise RuntimeError("script died")
        """
    with Sink() as sink:
        ok = run_python(script.format(dsn=sink.dsn))
        assert ok.returncode == 0, ok.stderr
        statuses = [s["status"] for s in sink.items("session")]
        assert statuses == ["exited"]
    with Sink() as sink:
        crash = run_python(script.format(dsn=sink.dsn).replace('sys.argv[-1] == "crash"', "True"))
        assert crash.returncode == 1
        (session,) = sink.items("session")
        assert session["status"] == "crashed"
        assert session["errors"] == 1
        assert session["attrs"]["release"] == "cli@1"


def test_async_flush_does_not_block_the_event_loop() -> None:
    """monitor(flush=True) on a coroutine waits for a slow sink while other tasks keep running."""
    from tests.support.sink import Answer

    with Sink() as sink:
        sink.answer = Answer(delay=0.6)
        tripwire.init(sink.dsn)

        @tripwire.monitor(flush=True)
        async def job() -> None:
            raise RuntimeError("slow sink")

        ticks: list[float] = []

        async def ticker() -> None:
            for _ in range(20):
                ticks.append(asyncio.get_running_loop().time())
                await asyncio.sleep(0.01)

        async def main() -> None:
            tick_task = asyncio.create_task(ticker())
            with pytest.raises(RuntimeError):
                await job()
            await tick_task

        asyncio.run(main())
        assert len(sink.events) == 1  # delivered by the time job() returned
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        assert max(gaps) < 0.35  # the 0.6 s delivery never stalled the loop


# -- cron check-ins ------------------------------------------------------------------------------


def test_monitor_with_a_slug_sends_in_progress_then_ok_with_the_schedule(start: Start) -> None:
    """@monitor(slug=, schedule=) sends in_progress then ok (same id, a duration) with the config."""
    events = start(environment="batch", release="etl@3")

    @tripwire.monitor(slug="nightly-export", schedule="0 3 * * *", checkin_margin=5, max_runtime=60)
    def export() -> str:
        return "done"

    assert export() == "done"
    tripwire.flush(5)
    first, last = events.checkins
    assert [first["status"], last["status"]] == ["in_progress", "ok"]
    assert first["check_in_id"] == last["check_in_id"] and len(first["check_in_id"]) == 32
    assert first["monitor_slug"] == "nightly-export" and first["type"] == "check_in"
    assert last["duration"] >= 0 and first["duration"] is None
    assert first["environment"] == "batch" and first["release"] == "etl@3"
    assert last["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "0 3 * * *"},
        "checkin_margin": 5,
        "max_runtime": 60,
    }


def test_a_failing_monitored_job_checks_in_error_and_reraises_the_same_exception(start: Start) -> None:
    """The error check-in follows the reported exception, which reaches the caller unchanged."""
    events = start()
    error = RuntimeError("disk full")

    @tripwire.monitor(slug="backup", schedule={"type": "interval", "value": 1, "unit": "hour"})
    def backup() -> None:
        raise error

    with pytest.raises(RuntimeError) as info:
        backup()
    assert info.value is error
    tripwire.flush(5)
    assert [c["status"] for c in events.checkins] == ["in_progress", "error"]
    assert events.checkins[1]["monitor_config"]["schedule"] == {
        "type": "interval",
        "value": 1,
        "unit": "hour",
    }
    assert len(events) == 1 and events[0]["exception"]["values"][-1]["value"] == "disk full"


def test_monitor_works_as_a_context_manager_and_on_async_jobs(start: Start) -> None:
    """``with tripwire.monitor(slug=...)`` and an async decorated job both check in."""
    events = start()
    with tripwire.monitor(slug="block-job", schedule="*/5 * * * *"):
        pass

    @tripwire.monitor(slug="async-job")
    async def job() -> int:
        await asyncio.sleep(0)
        return 7

    assert asyncio.run(job()) == 7
    tripwire.flush(5)
    assert [(c["monitor_slug"], c["status"]) for c in events.checkins] == [
        ("block-job", "in_progress"),
        ("block-job", "ok"),
        ("async-job", "in_progress"),
        ("async-job", "ok"),
    ]
    assert "monitor_config" not in events.checkins[2]


def test_capture_checkin_matches_sentry_sdk_and_never_raises(start: Start) -> None:
    """capture_checkin(slug, status, check_in_id, duration, monitor_config) returns the id; bad input
    and an uninitialised SDK give None instead of an exception."""
    tripwire.close()
    assert tripwire.capture_checkin("job", "ok") is None  # not initialised
    events = start()
    cid = tripwire.capture_checkin("job", "in_progress")
    assert cid is not None
    assert tripwire.capture_checkin("job", "ok", check_in_id=cid, duration=1.5) == cid
    assert tripwire.capture_checkin("job", "finished") is None
    assert tripwire.capture_checkin(None, "ok") is None
    tripwire.flush(5)
    assert [(c["status"], c["duration"]) for c in events.checkins] == [("in_progress", None), ("ok", 1.5)]


def test_bugsnag_and_logging_reporters_ignore_check_ins() -> None:
    """Reporters without cron monitors accept check-ins and do nothing with them."""
    from tripwire.reporters.bugsnag import BugsnagReporter
    from tripwire.reporters.logging import LoggingReporter

    for reporter in (BugsnagReporter(api_key="0" * 32), LoggingReporter()):
        reporter.send_checkin({"type": "check_in", "monitor_slug": "x", "status": "ok"})
