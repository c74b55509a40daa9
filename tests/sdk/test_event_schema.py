"""Events are valid Sentry events: field names, types and shapes from the protocol."""

from __future__ import annotations

import json
import platform
import re
import threading
from typing import Any

import tripwire
import tripwire.testing

from ._support import one_event

LEVELS = {"fatal", "error", "warning", "info", "debug"}


def _check_event(event: dict[str, Any]) -> None:
    assert re.fullmatch("[0-9a-f]{32}", event["event_id"])
    assert isinstance(event["timestamp"], float)
    assert event["platform"] == "python"
    assert event["level"] in LEVELS
    assert isinstance(event["environment"], str)
    assert event["sdk"]["name"] == "tripwire.python" and isinstance(event["sdk"]["version"], str)
    contexts = event["contexts"]
    assert contexts["runtime"]["name"] == platform.python_implementation()
    assert contexts["runtime"]["version"] == platform.python_version()
    assert contexts["os"]["name"] == platform.system()
    assert re.fullmatch("[0-9a-f]{32}", contexts["trace"]["trace_id"])
    assert re.fullmatch("[0-9a-f]{16}", contexts["trace"]["span_id"])
    for name, ctx in contexts.items():
        assert isinstance(name, str) and isinstance(ctx, dict)
    for key, value in event.get("tags", {}).items():
        assert isinstance(key, str) and isinstance(value, str) and len(value) <= 200
    for crumb in event.get("breadcrumbs", {}).get("values", []):
        assert isinstance(crumb["timestamp"], float)
        assert crumb["level"] in LEVELS and isinstance(crumb["type"], str)
    if "exception" in event:
        for value in event["exception"]["values"]:
            assert isinstance(value["type"], str) and isinstance(value["value"], str)
            assert isinstance(value["mechanism"]["type"], str)
            assert isinstance(value["mechanism"]["handled"], bool)
            for frame in value.get("stacktrace", {}).get("frames", []):
                assert isinstance(frame["filename"], str) and isinstance(frame["abs_path"], str)
                assert isinstance(frame["function"], str) and isinstance(frame["lineno"], int)
                assert isinstance(frame["in_app"], bool)
                assert isinstance(frame.get("pre_context", []), list)
                assert isinstance(frame.get("vars", {}), dict)
    json.dumps(event, allow_nan=False)


def test_exception_event_has_every_required_field_with_the_right_type() -> None:
    """An exception event from a configured client has the protocol's fields and types."""

    def go() -> None:
        tripwire.set_tag("route", "/pay")
        tripwire.set_user({"id": 7})
        tripwire.add_breadcrumb("clicked pay", category="ui", data={"amount": 3})
        try:
            {"present": 1}["missing"]
        except KeyError:
            tripwire.capture_exception()

    event = one_event(go, release="shop@1.2.3", environment="staging", server_name="web-1")
    _check_event(event)
    assert event["release"] == "shop@1.2.3"
    assert event["environment"] == "staging"
    assert event["server_name"] == "web-1"
    assert event["level"] == "error"
    assert event["user"] == {"id": "7"}
    assert event["exception"]["values"][-1]["type"] == "KeyError"
    assert event["exception"]["values"][-1]["value"] == "'missing'"
    assert "modules" not in event


def test_message_event_has_every_required_field() -> None:
    """A message event is valid too, with logentry instead of exception."""
    event = one_event(lambda: tripwire.capture_message("hello", level="debug"))
    _check_event(event)
    assert event["logentry"]["formatted"] == "hello"


def test_modules_only_when_asked() -> None:
    """attach_modules=True adds installed distributions and their versions."""
    event = one_event(lambda: tripwire.capture_message("m"), attach_modules=True)
    assert event["modules"]["pytest"]
    assert all(isinstance(v, str) for v in event["modules"].values())


def test_integration_preset_fields_are_kept() -> None:
    """Fields an integration passes with event= (logger, logentry) survive the build."""
    client = tripwire.init(reporters=[tripwire.testing.CaptureReporter()])
    with tripwire.testing.capture_events() as events:
        client.capture_message(
            "ignored text",
            "warning",
            event={
                "logger": "app.payments",
                "logentry": {"message": "paid %s", "params": ["x"], "formatted": "paid x"},
            },
        )
    event = events[0]
    _check_event(event)
    assert event["logger"] == "app.payments"
    assert event["logentry"] == {"message": "paid %s", "formatted": "paid x", "params": ["x"]}


def test_the_raised_exception_carries_the_thread_id() -> None:
    """The raised exception value names the thread that captured it (as contexts.thread does)."""

    def go() -> None:
        try:
            raise ValueError("t")
        except ValueError:
            tripwire.capture_exception()

    event = one_event(go)
    assert event["exception"]["values"][-1]["thread_id"] == threading.get_ident()
    assert event["contexts"]["thread"]["id"] == threading.get_ident()


def test_fields_are_held_to_the_protocols_types_and_lengths() -> None:
    """Odd values for crumb type/category/data, environment and release still give protocol-valid fields."""

    def go() -> None:
        tripwire.add_breadcrumb(123, category=4.5, type=None, data=[1, 2])  # type: ignore[arg-type]
        tripwire.capture_message("x")

    event = one_event(go, environment="e" * 100, release="r" * 300)
    crumb = event["breadcrumbs"]["values"][0]
    assert crumb["message"] == "123" and crumb["category"] == "4.5" and crumb["type"] == "None"
    assert crumb["data"] == {"value": [1, 2]}
    assert len(event["environment"]) == 64 and len(event["release"]) == 200


def test_a_failing_build_still_sends_a_minimal_event(caplog: Any) -> None:
    """If building the full event fails, the error still arrives with its type and value, marked."""
    import logging

    class Weird(Exception):
        @property
        def __traceback__(self) -> Any:  # type: ignore[override]
            raise RuntimeError("hostile traceback")

    with caplog.at_level(logging.ERROR, logger="tripwire"):
        event = one_event(lambda: tripwire.capture_exception(Weird("token=abc still scrubbed")))
    value = event["exception"]["values"][-1]
    assert value["type"] == "Weird" and value["value"] == "token=[Filtered] still scrubbed"
    assert event["extra"]["tripwire.build_error"].startswith("RuntimeError")
    assert "could not build event" in caplog.text


def test_breadcrumbs_changed_by_a_hook_still_have_a_timestamp() -> None:
    """A before_breadcrumb that drops the timestamp (or returns junk) still yields protocol-valid crumbs."""

    def hook(crumb: dict[str, Any], hint: dict[str, Any]) -> Any:
        if crumb.get("message") == "junk":
            return ["not", "a", "crumb"]
        return {"message": crumb["message"]}

    def go() -> None:
        tripwire.add_breadcrumb("kept")
        tripwire.add_breadcrumb("junk")
        tripwire.capture_message("x")

    event = one_event(go, before_breadcrumb=hook)
    for crumb in event["breadcrumbs"]["values"]:
        assert isinstance(crumb["timestamp"], float)
    assert event["breadcrumbs"]["values"][0]["message"] == "kept"
