"""tripwire.wsgi.TripwireMiddleware under a real waitress server on 127.0.0.1: errors of the app, of
its response iterable and of ``close()``, request data scrubbed, isolation, release health."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents
from tripwire.wsgi import TripwireMiddleware

from ..asgi.conftest import settle, wait_sessions
from . import apps
from .servers import request, waitress_server


def _environ(path: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "HTTP_HOST": "example.test",
    }
    environ.update(extra)
    return environ


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def test_an_app_error_is_reported_with_scrubbed_request_data_and_the_server_answers_500(
    events: CapturedEvents,
) -> None:
    with waitress_server(TripwireMiddleware(apps.plain_app)) as address:
        reply = request(
            address, "GET", "/boom?q=1&password=hunter2", headers={"Authorization": "Bearer secret-token"}
        )
    assert reply.status == 500
    (event,) = settle(events, 1)
    (exc,) = event["exception"]["values"]
    assert (exc["type"], exc["value"]) == ("ValueError", "boom")
    assert exc["mechanism"] == {"type": "wsgi", "handled": False}
    req = event["request"]
    assert req["method"] == "GET"
    assert req["url"] == f"http://{address}/boom"
    assert "hunter2" not in req["query_string"] and "q=1" in req["query_string"]
    assert "secret-token" not in json.dumps(req["headers"])
    assert event["transaction"] == "/boom"
    assert event["release"] == "1.0"
    assert event["breadcrumbs"]["values"][0]["category"] == "http.server"
    assert event["breadcrumbs"]["values"][0]["data"]["status_code"] == 500


def test_the_very_same_exception_object_is_reraised(events: CapturedEvents) -> None:
    app = TripwireMiddleware(apps.plain_app)
    with pytest.raises(ValueError) as info:
        app(_environ("/boom"), _start)
    assert info.value is apps.raised["boom"]
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert len(settle(events, 1)) == 1


def test_a_successful_response_passes_through_unchanged(events: CapturedEvents) -> None:
    with waitress_server(TripwireMiddleware(apps.plain_app)) as address:
        ok = request(address, "GET", "/ok")
        echo = request(address, "POST", "/echo", body=b"x" * 50_000)
    assert (ok.status, ok.body, ok.headers["content-type"]) == (200, b"ok", "text/plain")
    assert (echo.status, echo.body) == (200, b"x" * 50_000)
    tripwire.flush(5)
    assert list(events) == []


def test_an_error_raised_while_the_response_streams_is_reported_after_the_first_chunks(
    events: CapturedEvents,
) -> None:
    app = TripwireMiddleware(apps.plain_app)
    result = app(_environ("/stream"), _start)
    chunks = []
    with pytest.raises(apps.StreamFailed):
        for chunk in result:
            chunks.append(chunk)
    result.close()  # type: ignore[attr-defined]
    assert chunks == [b"first ", b"second "]
    (event,) = settle(events, 1)
    assert event["exception"]["values"][0]["type"] == "StreamFailed"
    assert event["transaction"] == "/stream"
    assert event["breadcrumbs"]["values"][0]["data"]["status_code"] == 500
    assert wait_sessions(events, 1) == {"crashed": 1}


def test_an_error_raised_by_the_iterables_close_is_reported_and_reraised(events: CapturedEvents) -> None:
    app = TripwireMiddleware(apps.plain_app)
    result = app(_environ("/close"), _start)
    assert list(result) == [b"all sent"]
    with pytest.raises(apps.CloseFailed):
        result.close()  # type: ignore[attr-defined]
    (event,) = settle(events, 1)
    assert event["exception"]["values"][0]["type"] == "CloseFailed"
    assert event["request"]["url"] == "http://example.test/close"


def test_a_streaming_error_under_waitress_is_reported_and_the_first_chunks_reach_the_client(
    events: CapturedEvents,
) -> None:
    with waitress_server(TripwireMiddleware(apps.plain_app)) as address:
        host, port = address.split(":")
        import socket

        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
    assert b"first \r\n" in received and b"second \r\n" in received  # chunked, as streamed
    (event,) = settle(events, 1)
    assert event["exception"]["values"][0]["value"] == "stream failed midway"


def test_a_file_wrapper_response_is_handed_to_the_server_untouched(events: CapturedEvents) -> None:
    class FileWrapper:
        def __init__(self, file: Any, block_size: int = 8192) -> None:
            self.file = file

        def __iter__(self) -> Any:
            return iter([self.file.read()])

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file body"))

    result = TripwireMiddleware(app)(_environ("/file", "GET", **{"wsgi.file_wrapper": FileWrapper}), _start)
    assert type(result) is FileWrapper
    assert wait_sessions(events, 1) == {"exited": 1}


def test_the_body_the_app_read_is_attached_scrubbed(events: CapturedEvents) -> None:
    body = json.dumps({"name": "ann", "password": "hunter2"}).encode()
    with waitress_server(TripwireMiddleware(apps.plain_app)) as address:
        reply = request(
            address, "POST", "/echo", body=body, headers={"Content-Type": "application/json", "X-Fail": "1"}
        )
    assert reply.status == 500
    (event,) = settle(events, 1)
    data = event["request"]["data"]
    assert data["name"] == "ann" and data["password"] != "hunter2"


def test_a_body_the_app_never_read_is_neither_read_nor_attached(events: CapturedEvents) -> None:
    stream = io.BytesIO(b"secret body")
    app = TripwireMiddleware(apps.plain_app)
    environ = _environ("/unread", "POST", CONTENT_LENGTH="11", CONTENT_TYPE="text/plain")
    environ["wsgi.input"] = stream
    with pytest.raises(ValueError):
        app(environ, _start)
    assert stream.tell() == 0
    (event,) = settle(events, 1)
    assert "data" not in event["request"]


def test_concurrent_requests_each_report_only_their_own_user_tags_and_breadcrumbs(
    events: CapturedEvents,
) -> None:
    count = 40
    with (
        waitress_server(TripwireMiddleware(apps.plain_app), threads=8) as address,
        ThreadPoolExecutor(8) as pool,
    ):
        statuses = list(
            pool.map(lambda i: request(address, "GET", f"/isolate?who=u{i}").status, range(count))
        )
    assert statuses == [500] * count
    reported = settle(events, count)
    assert len(reported) == count
    for event in reported:
        who = event["user"]["id"]
        assert event["tags"]["who"] == who
        assert event["exception"]["values"][0]["value"] == f"failed for {who}"
        crumbs = [c.get("message") for c in event["breadcrumbs"]["values"] if c.get("message")]
        assert crumbs == [f"crumb of {who}"]
    assert {event["user"]["id"] for event in reported} == {f"u{i}" for i in range(count)}


def test_release_health_counts_one_session_per_request(events: CapturedEvents) -> None:
    with waitress_server(TripwireMiddleware(apps.plain_app)) as address:
        for path in ("/ok", "/ok", "/boom", "/unavailable"):
            request(address, "GET", path)
    assert wait_sessions(events, 4) == {"exited": 3, "crashed": 1}


def test_failed_status_codes_report_a_response_with_such_a_status(events: CapturedEvents) -> None:
    app = TripwireMiddleware(apps.plain_app, failed_status_codes=range(500, 600))
    with waitress_server(app) as address:
        assert request(address, "GET", "/unavailable").status == 503
    (event,) = settle(events, 1)
    assert event["logentry"]["message"] == "GET /unavailable returned 503"


@pytest.mark.parametrize("track", [False, True])
def test_track_response_status_puts_the_status_sent_in_the_requests_breadcrumb(
    events: CapturedEvents, track: bool
) -> None:
    app = TripwireMiddleware(apps.plain_app, track_response_status=track)
    with waitress_server(app) as address:
        assert request(address, "GET", "/message").status == 201
    (event,) = settle(events, 1)
    crumb = event["breadcrumbs"]["values"][0]
    assert crumb["category"] == "http.server"
    assert crumb["data"].get("status_code") == (201 if track else None)


def test_without_a_client_the_app_runs_untouched() -> None:
    result = TripwireMiddleware(apps.plain_app)(_environ("/ok"), _start)
    assert result == [b"ok"]
