"""capture_exception / capture_message: ids, hooks, dedupe, ignore, sampling, and never raising."""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import pytest

import tripwire
import tripwire.testing

from ._support import one_event, raise_and_capture


def test_capture_exception_returns_the_event_id() -> None:
    """The returned id is the event's 32-hex event_id, and last_event_id() remembers it."""
    with tripwire.testing.capture_events() as events:
        try:
            raise KeyError("missing")
        except KeyError:
            event_id = tripwire.capture_exception()
        assert event_id is not None and re.fullmatch("[0-9a-f]{32}", event_id)
        assert tripwire.last_event_id() == event_id
    assert events[0]["event_id"] == event_id


def test_capture_exception_without_an_exception_returns_none() -> None:
    """Outside an except block and without an argument nothing is reported."""
    with tripwire.testing.capture_events() as events:
        assert tripwire.capture_exception() is None
    assert events == []


def test_capture_exception_accepts_an_exception_object() -> None:
    """An exception passed explicitly is reported with its own traceback, from anywhere."""
    try:
        raise OSError(2, "no such file")
    except OSError as exc:
        error = exc
    event = one_event(lambda: tripwire.capture_exception(error))
    value = event["exception"]["values"][-1]
    assert value["type"] == "FileNotFoundError"
    assert value["mechanism"]["meta"]["errno"]["number"] == 2
    assert value["stacktrace"]["frames"][-1]["function"].endswith("accepts_an_exception_object")


def test_capture_message_has_level_and_logentry() -> None:
    """A message becomes a logentry at the given level; unknown levels fall back to info."""
    with tripwire.testing.capture_events() as events:
        tripwire.capture_message("disk almost full", level="warning")
        tripwire.capture_message("odd level", level="loud")
    assert events[0]["logentry"] == {"message": "disk almost full", "formatted": "disk almost full"}
    assert events[0]["level"] == "warning"
    assert events[1]["level"] == "info"
    assert "exception" not in events[0]


def test_scope_kwargs_apply_to_one_event_only() -> None:
    """tags/extras/contexts/user/level/fingerprint given to capture_* do not stick to the scope."""
    with tripwire.testing.capture_events() as events:
        tripwire.set_tag("area", "billing")
        tripwire.capture_message(
            "one",
            tags={"order": "7"},
            extras={"cart": [1, 2]},
            contexts={"job": {"id": 9}},
            user={"id": "u1"},
            level="fatal",
            fingerprint=["billing", "{{ default }}"],
        )
        tripwire.capture_message("two")
    first, second = events
    assert first["tags"] == {"area": "billing", "order": "7"}
    assert first["extra"] == {"cart": [1, 2]}
    assert first["contexts"]["job"] == {"id": 9}
    assert first["user"] == {"id": "u1"}
    assert first["level"] == "fatal"
    assert first["fingerprint"] == ["billing", "{{ default }}"]
    assert second["tags"] == {"area": "billing"}
    assert "extra" not in second and "user" not in second and "fingerprint" not in second


def test_unknown_capture_arguments_are_ignored_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A wrong keyword to capture_message is logged and the event still goes out."""
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        event = one_event(lambda: tripwire.capture_message("x", tagz={"a": 1}))
    assert event["logentry"]["message"] == "x"
    assert "tagz" in caplog.text


def test_same_exception_is_reported_once() -> None:
    """Capturing one exception object twice (handler, then middleware) sends one event and counts one."""
    with tripwire.testing.capture_events() as events:
        try:
            raise ValueError("once")
        except ValueError as exc:
            first = tripwire.capture_exception()
            second = tripwire.capture_exception(exc)
        tripwire.flush()
        assert tripwire.stats()["dropped"].get("deduplicated") == 1
    assert first is not None and second is None
    assert len(events) == 1


def test_equal_but_distinct_exceptions_are_both_reported() -> None:
    """Dedupe is by object identity: two raises of the same error are two events."""
    with tripwire.testing.capture_events() as events:
        for _ in range(2):
            raise_and_capture(ValueError("same text"))
    assert len(events) == 2


def test_dedupe_keeps_no_exception_alive() -> None:
    """After delivery nothing in tripwire holds the reported exception (or its frames)."""
    import gc
    import weakref

    class Collected(Exception):
        pass

    refs: list[weakref.ref[BaseException]] = []

    def handler() -> None:
        try:
            raise Collected("short-lived")
        except Collected as exc:
            tripwire.capture_exception()
            refs.append(weakref.ref(exc))

    with tripwire.testing.capture_events() as events:
        handler()
        tripwire.flush()
    assert len(events) == 1
    # The worker drops its reference right after the job is marked done: poll briefly.
    deadline = time.monotonic() + 5
    while refs[0]() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert refs[0]() is None


def test_dedupe_does_not_change_what_the_exception_shows() -> None:
    """Reporting leaves the exception's args, str, repr, chain, traceback and notes as they were."""
    try:
        raise ValueError("as raised") from KeyError("cause")
    except ValueError as exc:
        error = exc
    cause, traceback, context = error.__cause__, error.__traceback__, error.__context__
    with tripwire.testing.capture_events():
        tripwire.capture_exception(error)
    assert error.args == ("as raised",)
    assert str(error) == "as raised" and repr(error) == "ValueError('as raised')"
    assert error.__cause__ is cause and error.__context__ is context and error.__suppress_context__
    assert error.__traceback__ is traceback and traceback is not None and traceback.tb_next is None
    assert not hasattr(error, "__notes__")


def test_a_new_client_reports_an_exception_again() -> None:
    """The once-only rule is per client: after init() again the same exception can be reported."""
    error = RuntimeError("again")
    with tripwire.testing.capture_events() as first:
        tripwire.capture_exception(error)
    with tripwire.testing.capture_events() as second:
        tripwire.capture_exception(error)
    assert len(first) == 1 and len(second) == 1


def test_dedupe_works_across_threads() -> None:
    """An exception reported in one thread is not reported again from another."""
    with tripwire.testing.capture_events() as events:
        try:
            raise RuntimeError("shared")
        except RuntimeError as exc:
            error = exc
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(tripwire.capture_exception(error)))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(events) == 1
    assert sum(r is not None for r in results) == 1


def test_ignore_errors_by_class_and_name_counts_drops() -> None:
    """ignore_errors matches subclasses, bare names and dotted names; each drop is counted."""

    class Mine(LookupError):
        pass

    with tripwire.testing.capture_events(
        ignore_errors=[KeyError, "ZeroDivisionError", f"{Mine.__module__}.{Mine.__qualname__}"]
    ) as events:
        raise_and_capture(KeyError("k"))
        raise_and_capture(ZeroDivisionError())
        raise_and_capture(Mine())
        raise_and_capture(ValueError("kept"))
        tripwire.flush()
        assert tripwire.stats()["dropped"]["ignored"] == 3
    assert [e["exception"]["values"][-1]["type"] for e in events] == ["ValueError"]


def test_sample_rate_zero_drops_everything_and_counts() -> None:
    """sample_rate=0 sends nothing and counts every capture under sample_rate."""
    with tripwire.testing.capture_events(sample_rate=0.0) as events:
        raise_and_capture(ValueError())
        tripwire.capture_message("m")
        tripwire.flush()
        assert tripwire.stats()["dropped"]["sample_rate"] == 2
    assert events == []


def test_sampling_is_decided_before_any_expensive_work() -> None:
    """A dropped capture never reaches the worker: a local whose repr is watched is never represented."""
    touched: list[str] = []

    class Watched:
        def __repr__(self) -> str:
            touched.append("repr")
            return "Watched()"

    def fail() -> None:
        watched = Watched()  # noqa: F841 - a local the builder would represent
        raise ValueError("sampled away")

    with tripwire.testing.capture_events(sample_rate=0.0, ignore_errors=["KeyError"]) as events:
        try:
            fail()
        except ValueError:
            tripwire.capture_exception()
    assert events == [] and touched == []


def test_before_send_can_change_the_event_and_sees_exc_info() -> None:
    """before_send gets the finished event and a hint with exc_info; its return value is sent."""
    seen: dict[str, Any] = {}

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        seen["exc_info"] = hint.get("exc_info")
        event["tags"] = {**event.get("tags", {}), "checked": "yes"}
        return event

    error = ValueError("hooked")
    event = one_event(lambda: raise_and_capture(error), before_send=before_send)
    assert event["tags"]["checked"] == "yes"
    assert seen["exc_info"][1] is error and seen["exc_info"][0] is ValueError


def test_before_send_returning_none_drops_and_counts() -> None:
    """Returning None from before_send drops the event and counts it under before_send."""
    with tripwire.testing.capture_events(before_send=lambda e, h: None) as events:
        tripwire.capture_message("dropped")
        tripwire.flush()
        assert tripwire.stats()["dropped"]["before_send"] == 1
    assert events == []


def test_before_send_that_raises_leaves_the_event_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    """A hook that edits the event and then raises is logged; the original event is sent."""

    def broken(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event["level"] = "debug"
        event.clear()
        raise RuntimeError("hook bug")

    with caplog.at_level(logging.ERROR, logger="tripwire"):
        event = one_event(lambda: tripwire.capture_message("still sent", level="warning"), before_send=broken)
    assert event["level"] == "warning"
    assert event["logentry"]["message"] == "still sent"
    assert "before_send raised" in caplog.text


def test_before_send_output_is_made_json_safe() -> None:
    """Objects a hook adds (sets, custom classes, NaN) are serialized, not sent raw."""

    def adds_objects(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event["extra"] = {"obj": object(), "nan": float("nan"), "set": {1}}
        return event

    event = one_event(lambda: tripwire.capture_message("x"), before_send=adds_objects)
    assert event["extra"]["nan"] == "nan"
    assert event["extra"]["set"] == [1]
    assert event["extra"]["obj"].startswith("<object object")


def test_capture_never_raises_even_with_hostile_input(caplog: pytest.LogCaptureFixture) -> None:
    """Hostile arguments (non-mapping tags, unprintable message) never raise into the caller."""

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        __repr__ = __str__

    with tripwire.testing.capture_events() as events:
        tripwire.capture_message(Hostile())  # type: ignore[arg-type]
        tripwire.capture_message("tags not a mapping", tags=["a", "b"])
        tripwire.set_tags(Hostile())  # type: ignore[arg-type]
        tripwire.set_tag(Hostile(), Hostile())  # type: ignore[arg-type]
        try:
            raise ValueError(Hostile())
        except ValueError:
            tripwire.capture_exception(extras=Hostile())
    # Each of the three captures is reported despite its hostile parts (none is lost to them).
    assert len(events) == 3
    assert all(event["event_id"] for event in events)


def test_event_processors_on_the_scope_run_on_the_worker() -> None:
    """A scope processor can add data or drop the event, and runs off the calling thread."""
    from tripwire import _scope

    threads: list[str] = []

    def add_request(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        event["request"] = {"url": "http://127.0.0.1/x", "method": "GET"}
        return event

    with tripwire.testing.capture_events() as events, tripwire.isolation_scope():
        holder = _scope.current_holder()
        holder.data = holder.data.with_processor(add_request)
        tripwire.capture_message("with request")
        holder.data = holder.data.with_processor(lambda e, h: None)
        tripwire.capture_message("dropped by processor")
    assert len(events) == 1
    assert events[0]["request"]["method"] == "GET"
    assert threads and threads[0] != threading.current_thread().name


def test_before_send_receives_the_hint_an_integration_passed() -> None:
    """A log_record hint given by the logging integration reaches before_send unchanged."""
    record = logging.LogRecord("app", logging.ERROR, __file__, 10, "failed %s", ("job",), None)
    seen: list[dict[str, Any]] = []

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        seen.append(hint)
        return event

    client = tripwire.init(reporters=[tripwire.testing.CaptureReporter()], before_send=before_send)
    client.capture_message("failed job", "error", hint={"log_record": record})
    client.flush(5)
    assert seen and seen[0]["log_record"] is record


def test_capture_exception_of_a_non_exception_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """Passing something that is not an exception returns None with a warning and sends nothing."""
    with caplog.at_level(logging.WARNING, logger="tripwire"), tripwire.testing.capture_events() as events:
        assert tripwire.capture_exception("not an exception") is None  # type: ignore[arg-type]
    assert events == []
    assert "needs an exception" in caplog.text


def test_an_exception_never_raised_is_reported_without_frames() -> None:
    """An exception object that was created but never raised is reported with its type and value."""
    event = one_event(lambda: tripwire.capture_exception(ValueError("made, not raised")))
    value = event["exception"]["values"][-1]
    assert value["value"] == "made, not raised" and "stacktrace" not in value


def test_an_exception_logged_then_captured_is_reported_once() -> None:
    """logger.exception() (logging integration) and capture_exception() on one error: one event."""
    reporter = tripwire.testing.CaptureReporter()
    tripwire.init(reporters=[reporter])
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logging.getLogger("tests.sdk.app").exception("upstream failed")
        assert tripwire.capture_exception() is None
    tripwire.flush(5)
    (event,) = reporter.events
    assert event["exception"]["values"][-1]["type"] == "ConnectionResetError"
    assert event["logger"] == "tests.sdk.app"
    assert tripwire.stats()["dropped"]["deduplicated"] == 1


def test_close_delivers_what_was_captured_and_disables() -> None:
    """close() waits for pending events; afterwards tripwire is off and capture returns None."""
    reporter = tripwire.testing.CaptureReporter()
    tripwire.init(reporters=[reporter])
    for i in range(20):
        tripwire.capture_message(f"m{i}")
    tripwire.close(timeout=5)
    assert len(reporter.events) == 20
    assert tripwire.get_client() is None
    assert tripwire.capture_message("after close") is None
    assert tripwire.flush() is True


def test_capture_exception_accepts_an_exc_info_tuple() -> None:
    """sys.exc_info() tuples work as in sentry_sdk, so migrating code keeps working."""
    import sys

    def go() -> None:
        try:
            raise LookupError("via exc_info")
        except LookupError:
            tripwire.capture_exception(sys.exc_info())  # type: ignore[arg-type]

    assert one_event(go)["exception"]["values"][-1]["type"] == "LookupError"


def test_before_send_returning_something_else_sends_the_event_unchanged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook that returns a non-event (True, a string) is logged; the original event is sent."""
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        event = one_event(lambda: tripwire.capture_message("kept"), before_send=lambda e, h: True)
    assert event["logentry"]["message"] == "kept"
    assert "not an event" in caplog.text
