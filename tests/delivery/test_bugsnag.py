"""The BugSnag reporter: Error Reporting API v4 and Session Tracking API 1.0 payloads."""

from __future__ import annotations

import re
from typing import Any

import tripwire
from tests.support.sink import Sink
from tripwire._types import SessionBatch

SENT_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
API_KEY = "0123456789abcdef0123456789abcdef"


def _reporter(sink: Sink, **options: object) -> dict[str, object]:
    return {
        "backend": "bugsnag",
        "api_key": API_KEY,
        "endpoint": f"{sink.url}/notify",
        "sessions_endpoint": f"{sink.url}/sessions",
        **options,
    }


def _inner() -> None:
    secret = "x"  # noqa: F841 - a local the frame carries
    raise LookupError("no such order")


def _outer() -> None:
    try:
        _inner()
    except LookupError as exc:
        raise RuntimeError("checkout failed") from exc


def test_error_payload_has_every_field_the_api_requires(sink: Sink) -> None:
    """An unhandled ASGI error arrives with headers, notifier, app, device, exceptions, request, user..."""
    client = tripwire.init(
        reporters=[_reporter(sink)], release="2.0.1", environment="staging", send_default_pii=True
    )
    tripwire.set_user({"id": "u1", "email": "a@example.com", "username": "ann"})
    tripwire.set_context("order", {"id": 42})
    tripwire.set_extra("cart", "3 items")
    tripwire.set_tag("region", "eu")
    tripwire.add_breadcrumb("GET /cart", category="http", type="http", data={"status": 200})
    tripwire.add_breadcrumb("cache miss", category="cache")
    try:
        _outer()
    except RuntimeError as exc:
        client.capture_exception(
            exc,
            mechanism={"type": "asgi", "handled": False},
            event={
                "request": {
                    "url": "http://shop.example/checkout",
                    "method": "POST",
                    "headers": {"Referer": "http://shop.example/cart"},
                    "env": {"REMOTE_ADDR": "10.0.0.7"},
                }
            },
            fingerprint=["checkout", "payment"],
        )
    assert tripwire.flush(10)
    (request,) = sink.requests
    assert request.path == "/notify"
    assert request.headers["bugsnag-api-key"] == API_KEY
    assert request.headers["bugsnag-payload-version"] == "4.0"
    assert SENT_AT.match(request.headers["bugsnag-sent-at"])
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert body["apiKey"] == API_KEY
    assert body["payloadVersion"] == "4.0"
    assert set(body["notifier"]) == {"name", "version", "url"}
    (event,) = body["events"]
    assert event["severity"] == "error"
    assert event["unhandled"] is True
    assert event["severityReason"] == {
        "type": "unhandledExceptionMiddleware",
        "attributes": {"framework": "ASGI"},
    }
    assert event["app"]["releaseStage"] == "staging"
    assert event["app"]["version"] == "2.0.1"
    assert event["device"]["hostname"]
    assert event["device"]["runtimeVersions"]["python"]
    assert event["groupingHash"] == "checkout payment"
    assert event["user"] == {"id": "u1", "email": "a@example.com", "name": "ann"}
    assert event["request"]["httpMethod"] == "POST"
    assert event["request"]["url"] == "http://shop.example/checkout"
    assert event["request"]["clientIp"] == "10.0.0.7"
    assert event["request"]["referer"] == "http://shop.example/cart"
    assert event["context"]
    assert event["metaData"]["order"] == {"id": 42}
    assert event["metaData"]["extra"] == {"cart": "3 items"}
    assert event["metaData"]["tags"] == {"region": "eu"}
    # Raised exception first, then its cause.
    assert [e["errorClass"] for e in event["exceptions"]] == ["RuntimeError", "LookupError"]
    assert event["exceptions"][0]["message"] == "checkout failed"
    cause = event["exceptions"][1]
    assert cause["type"] == "python"
    top = cause["stacktrace"][0]  # innermost first
    assert top["method"] == "_inner"
    assert top["inProject"] is True
    assert top["file"].endswith("test_bugsnag.py")
    assert 'raise LookupError("no such order")' in top["code"][str(top["lineNumber"])]
    assert len(top["code"]) > 1
    for frame in cause["stacktrace"]:
        assert {"file", "lineNumber", "method", "inProject"} <= set(frame)
    crumbs = event["breadcrumbs"]
    assert [(c["name"], c["type"]) for c in crumbs] == [("GET /cart", "request"), ("cache miss", "manual")]
    assert all(SENT_AT.match(c["timestamp"]) for c in crumbs)


def test_handled_errors_and_messages_map_severity(sink: Sink) -> None:
    """A handled exception is a handledException error; a warning message is a warning, not unhandled."""
    tripwire.init(reporters=[_reporter(sink, release_stage="beta", app_version="7")])
    try:
        raise ValueError("bad input")
    except ValueError:
        tripwire.capture_exception()
    tripwire.capture_message("disk almost full", "warning")
    assert tripwire.flush(10)
    handled, message = sorted(sink.bugsnag_events, key=lambda e: e["severity"])
    assert "groupingHash" not in handled
    assert handled["severityReason"] == {"type": "handledException"}
    assert handled["unhandled"] is False
    assert handled["app"] == {"releaseStage": "beta", "type": "python", "version": "7"}
    assert message["severity"] == "warning"
    assert message["unhandled"] is False
    assert message["exceptions"][0]["message"] == "disk almost full"


def test_sessions_go_to_the_session_tracking_api(sink: Sink) -> None:
    """Session aggregates become per-minute sessionCounts with payload version 1.0."""
    client = tripwire.init(reporters=[_reporter(sink)], release="3.1")
    client.submit_sessions(
        SessionBatch(
            aggregates=[
                {
                    "attrs": {"release": "3.1", "environment": "production"},
                    "aggregates": [
                        {"started": "2026-11-21T05:28:00Z", "exited": 3, "errored": 1, "crashed": 2},
                        {"started": "2026-11-21T05:29:00Z", "exited": 1},
                    ],
                }
            ]
        )
    )
    assert tripwire.flush(10)
    (request,) = sink.requests
    assert request.path == "/sessions"
    assert request.headers["bugsnag-payload-version"] == "1.0"
    assert SENT_AT.match(request.headers["bugsnag-sent-at"])
    body = request.json
    assert body["app"] == {"releaseStage": "production", "type": "python", "version": "3.1"}
    assert body["sessionCounts"] == [
        {"startedAt": "2026-11-21T05:28:00Z", "sessionsStarted": 6},
        {"startedAt": "2026-11-21T05:29:00Z", "sessionsStarted": 1},
    ]
    assert set(body["notifier"]) == {"name", "version", "url"}
    assert body["device"]["hostname"]


def test_bugsnag_and_sentry_at_once(sink: Sink) -> None:
    """With a DSN and a BugSnag reporter, every event reaches both backends."""
    tripwire.init(sink.dsn, reporters=[_reporter(sink)], send_client_reports=False)
    for i in range(5):
        tripwire.capture_message(f"hello {i}", "error")
    assert tripwire.flush(10)
    assert len(sink.events) == 5
    assert len(sink.bugsnag_events) == 5
    assert tripwire.stats()["sent"] == {"sentry": 5, "bugsnag": 5}


def test_asgi_requests_become_bugsnag_events_and_session_counts(sink: Sink) -> None:
    """Through the real ASGI middleware: a crash is an unhandled middleware error naming its request's
    session, requests are sessions."""
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("fine")

    async def boom(request: object) -> PlainTextResponse:
        raise ZeroDivisionError("division by zero in checkout")

    app = tripwire.asgi.TripwireMiddleware(Starlette(routes=[Route("/ok", ok), Route("/boom", boom)]))
    tripwire.init(reporters=[_reporter(sink)], release="8.1", environment="prod")

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as http:
            return [(await http.get(path)).status_code for path in ("/ok", "/ok", "/boom")]

    assert asyncio.run(main()) == [200, 200, 500]
    assert tripwire.flush(10)
    (event,) = sink.bugsnag_events
    assert event["unhandled"] is True
    assert event["severityReason"]["type"] == "unhandledExceptionMiddleware"
    assert event["exceptions"][0]["errorClass"] == "ZeroDivisionError"
    assert event["request"]["url"].startswith("http://shop.test/boom")
    assert event["request"]["httpMethod"] == "GET"
    (sessions,) = [r.json for r in sink.requests if r.path == "/sessions"]
    assert sessions["app"]["version"] == "8.1" and sessions["app"]["releaseStage"] == "prod"
    assert sum(c["sessionsStarted"] for c in sessions["sessionCounts"]) == 3
    # The error names its request's session, so BugSnag links it (an unhandled one).
    assert event["session"]["events"] == {"handled": 0, "unhandled": 1}
    assert len(event["session"]["id"]) == 32 and SENT_AT.match(event["session"]["startedAt"])


def test_log_messages_group_by_their_template_not_their_text(sink: Sink) -> None:
    """ "payment p-1 failed" and "payment p-2 failed" logged with one template are one BugSnag error
    (same errorClass), each with its own formatted message."""
    import logging

    tripwire.init(reporters=[_reporter(sink)])
    log = logging.getLogger("shop.payments")
    for payment in ("p-1", "p-2"):
        log.error("payment %s failed", payment)
    assert tripwire.flush(10)
    events = sink.bugsnag_events
    assert [e["exceptions"][0]["errorClass"] for e in events] == ["payment %s failed"] * 2
    messages = sorted(e["exceptions"][0]["message"] for e in events)
    assert messages == ["payment p-1 failed", "payment p-2 failed"]


def test_a_grouping_hash_set_on_a_log_record_groups_the_error(sink: Sink) -> None:
    """logger.error(..., extra={"groupingHash": "payments"}), as BugSnag's handler allows, is the
    event's groupingHash (and its fingerprint, so Sentry servers group by it as well)."""
    import logging

    tripwire.init(sink.dsn, reporters=[_reporter(sink)], send_client_reports=False)
    logging.getLogger("shop").error("card declined", extra={"groupingHash": "payments"})
    assert tripwire.flush(10)
    (event,) = sink.bugsnag_events
    assert event["groupingHash"] == "payments"
    assert sink.events[0]["fingerprint"] == ["payments"]


def test_sentrys_default_fingerprint_spelling_keeps_bugsnag_grouping(sink: Sink) -> None:
    """A fingerprint of ["{{default}}", "eu"] (Sentry's spelling, no spaces) is no literal groupingHash."""
    tripwire.init(reporters=[_reporter(sink)])
    tripwire.capture_message("quota reached", "error", fingerprint=["{{default}}", "eu"])
    tripwire.capture_message("quota reached", "warning", fingerprint=["{{ default }}", "eu"])
    assert tripwire.flush(10)
    assert [("groupingHash" in e) for e in sink.bugsnag_events] == [False, False]


def test_bugsnag_breadcrumb_types_and_long_names_arrive_as_written(sink: Sink) -> None:
    """Breadcrumbs of BugSnag's own types (state, process, log, request...) keep their type, and a
    name longer than 30 characters is not cut."""
    tripwire.init(reporters=[_reporter(sink)])
    name = "checkout moved from cart to payment step"
    kinds = ("state", "process", "log", "request", "navigation", "user", "error", "manual")
    for kind in kinds:
        tripwire.add_breadcrumb(name, type=kind)
    tripwire.capture_message("step failed", "error")
    assert tripwire.flush(10)
    (event,) = sink.bugsnag_events
    assert [(c["name"], c["type"]) for c in event["breadcrumbs"]] == [(name, kind) for kind in kinds]


def test_bugsnag_app_version_gives_release_health_without_a_release(sink: Sink) -> None:
    """A BugSnag setup with app_version and no release: start_session() works and the session count
    reaches BugSnag under that version."""
    tripwire.init(reporters=[_reporter(sink, app_version="5.1")], default_integrations=False)
    assert tripwire.start_session() is True
    tripwire.end_session()
    assert tripwire.flush(10)
    (request,) = [r for r in sink.requests if r.path == "/sessions"]
    assert request.json["app"]["version"] == "5.1"
    assert request.json["sessionCounts"][0]["sessionsStarted"] == 1


def test_bugsnag_without_any_version_says_release_health_is_off(sink: Sink, caplog: Any) -> None:
    """Neither release nor app_version: a warning says sessions are off, and start_session() is False."""
    import logging

    with caplog.at_level(logging.WARNING, logger="tripwire"):
        tripwire.init(reporters=[_reporter(sink)], default_integrations=False)
    assert any("release health is off" in r.getMessage() for r in caplog.records)
    assert tripwire.start_session() is False


def test_errors_in_a_session_carry_bugsnags_session_object(sink: Sink) -> None:
    """An error captured in an application session names it (id, startedAt, handled/unhandled counts),
    so BugSnag links the error to the session."""
    tripwire.init(reporters=[_reporter(sink, app_version="5.1")], default_integrations=False)
    assert tripwire.start_session()
    try:
        raise ValueError("bad input")
    except ValueError:
        tripwire.capture_exception()
    tripwire.end_session()
    assert tripwire.flush(10)
    (event,) = sink.bugsnag_events
    session = event["session"]
    assert re.fullmatch(r"[0-9a-f]{32}", session["id"].replace("-", ""))
    assert SENT_AT.match(session["startedAt"])
    assert session["events"] == {"handled": 1, "unhandled": 0}
    assert "session" not in event["metaData"]


def test_a_reported_error_leaves_bugsnags_error_breadcrumb(sink: Sink) -> None:
    """After an error is reported, the next event carries an "error" breadcrumb naming it, as BugSnag's
    notifier leaves one."""
    tripwire.init(reporters=[_reporter(sink)])
    try:
        raise KeyError("sku-9")
    except KeyError:
        tripwire.capture_exception()
    tripwire.capture_message("cart empty", "warning")
    assert tripwire.flush(10)
    later = [e for e in sink.bugsnag_events if e["severity"] == "warning"][0]
    crumb = later["breadcrumbs"][-1]
    assert (crumb["type"], crumb["name"]) == ("error", "KeyError")
    assert crumb["metaData"]["errorClass"] == "KeyError"
    assert crumb["metaData"]["message"] == "'sku-9'"
    assert crumb["metaData"]["unhandled"] is False
