"""Outgoing HTTP breadcrumbs from real requests to a loopback server."""

from __future__ import annotations

import asyncio
import http.client
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import urllib3

import tripwire
from tests.support.sink import Sink
from tripwire.reporters.capture import CapturedEvents

Start = Callable[..., CapturedEvents]


class Server:
    """Answers GET/POST /status/<code> with that status and remembers the request headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?")[0]
                status = int(path.rsplit("/", 1)[-1]) if path.startswith("/status/") else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


def http_crumbs(events: CapturedEvents) -> list[dict[str, Any]]:
    return [c for c in events[-1].get("breadcrumbs", {}).get("values", []) if c.get("type") == "http"]


def report(events: CapturedEvents) -> list[dict[str, Any]]:
    tripwire.capture_message("probe")
    tripwire.flush(5)
    return http_crumbs(events)


def test_http_client_request_leaves_a_breadcrumb(start: Start, server: Server) -> None:
    """http.client: method, URL, status, reason and duration; the query apart and scrubbed."""
    events = start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/status/200?page=2&token=abc123")
    conn.getresponse().read()
    conn.close()
    (crumb,) = report(events)
    assert crumb["category"] == "httplib"
    assert crumb["level"] == "info"
    data = crumb["data"]
    assert data["method"] == "GET"
    assert data["url"] == f"{server.url}/status/200"
    assert data["status_code"] == 200
    assert data["reason"] == "OK"
    assert "page=2" in data["http.query"]
    assert "abc123" not in data["http.query"]
    assert data["duration_ms"] >= 0
    assert isinstance(crumb["timestamp"], float)


def test_urllib_request_errors_are_warning_and_error_crumbs(start: Start, server: Server) -> None:
    """urllib.request 404 and 503 answers leave warning and error breadcrumbs."""
    events = start()
    for code in (404, 503):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.url}/status/{code}", timeout=5)
    crumbs = report(events)
    assert [(c["data"]["status_code"], c["level"]) for c in crumbs] == [(404, "warning"), (503, "error")]


def test_urllib3_requests_leave_breadcrumbs_without_credentials(start: Start, server: Server) -> None:
    """urllib3 (what requests uses) goes through http.client; user:password never reaches the crumb."""
    events = start()
    pool = urllib3.PoolManager()
    pool.request("POST", f"http://user:hunter2@127.0.0.1:{server.port}/status/201", body=b"{}")
    pool.clear()
    (crumb,) = report(events)
    assert crumb["data"]["method"] == "POST"
    assert crumb["data"]["status_code"] == 201
    assert "hunter2" not in repr(crumb)


def test_httpx_sync_and_async_requests_leave_breadcrumbs(start: Start, server: Server) -> None:
    """httpx.Client and httpx.AsyncClient requests leave httpx breadcrumbs."""
    events = start()
    with httpx.Client() as client:
        client.get(f"{server.url}/status/200", params={"q": "x", "password": "pw-secret"})

    async def fetch() -> None:
        async with httpx.AsyncClient() as client:
            await client.get(f"{server.url}/status/500")

    asyncio.run(fetch())
    crumbs = report(events)
    assert [(c["category"], c["data"]["status_code"]) for c in crumbs] == [("httpx", 200), ("httpx", 500)]
    assert crumbs[0]["data"]["url"] == f"{server.url}/status/200"
    assert "pw-secret" not in repr(crumbs)
    assert crumbs[1]["level"] == "error"


def test_failed_connection_leaves_an_error_crumb(start: Start, server: Server) -> None:
    """httpx: a request that fails to connect leaves an error breadcrumb naming the exception."""
    events = start()
    port = server.port
    server.stop()
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/gone")
    (crumb,) = report(events)
    assert crumb["level"] == "error"
    assert crumb["data"]["error"] == "ConnectError"


def test_no_trace_headers_are_added(start: Start, server: Server) -> None:
    """Requests leave with exactly the headers the app set: no sentry-trace, baggage or traceparent."""
    start()
    urllib.request.urlopen(f"{server.url}/status/200", timeout=5).read()
    with httpx.Client() as client:
        client.get(f"{server.url}/status/200")
    for headers in server.headers:
        assert not {"sentry-trace", "baggage", "traceparent"} & set(headers)


def test_tripwires_own_delivery_leaves_no_breadcrumbs(server: Server) -> None:
    """Sending events to the DSN does not put breadcrumbs in the app's scope."""
    with Sink() as sink:
        tripwire.init(sink.dsn)
        tripwire.capture_message("first")
        tripwire.flush(5)
        urllib.request.urlopen(f"{server.url}/status/200", timeout=5).read()
        tripwire.capture_message("second")
        tripwire.flush(5)
        events = sink.wait_for_events(2)
    crumbs = events[-1].get("breadcrumbs", {}).get("values", [])
    assert [c["data"]["url"] for c in crumbs] == [f"{server.url}/status/200"]


def test_disabled_stdlib_integration_leaves_http_client_alone(start: Start, server: Server) -> None:
    """disabled_integrations=["stdlib"]: no http.client patching, no crumbs."""
    getresponse = http.client.HTTPConnection.getresponse
    events = start(disabled_integrations=["stdlib"])
    assert http.client.HTTPConnection.getresponse is getresponse
    urllib.request.urlopen(f"{server.url}/status/200", timeout=5).read()
    assert report(events) == []


def test_concurrent_tasks_get_only_their_own_http_breadcrumbs(start: Start, server: Server) -> None:
    """Two concurrent units of work each see the requests they made, never the other's."""
    events = start()

    async def unit(name: str, codes: list[int]) -> None:
        with tripwire.isolation_scope():
            async with httpx.AsyncClient() as client:
                for code in codes:
                    await client.get(f"{server.url}/status/{code}", params={"unit": name})
                    await asyncio.sleep(0)
            tripwire.capture_message(name)

    async def main() -> None:
        await asyncio.gather(unit("a", [200, 201, 202]), unit("b", [404, 410]))

    asyncio.run(main())
    tripwire.flush(5)
    by_name = {e["logentry"]["message"]: http_crumbs_of(e) for e in events}
    assert [c["data"]["status_code"] for c in by_name["a"]] == [200, 201, 202]
    assert [c["data"]["status_code"] for c in by_name["b"]] == [404, 410]


def http_crumbs_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in event.get("breadcrumbs", {}).get("values", []) if c.get("type") == "http"]


def test_trace_header_only_for_asked_targets_and_matching_the_events_trace(
    start: Start, server: Server
) -> None:
    """trace_propagation_targets adds sentry-trace (the unit of work's trace id) to matching URLs only."""
    from tripwire.integrations.httpx import HttpxIntegration
    from tripwire.integrations.stdlib import StdlibIntegration

    targets = [rf"^{server.url}/status/2"]
    events = start(
        integrations=[
            StdlibIntegration(trace_propagation_targets=targets),
            HttpxIntegration(trace_propagation_targets=targets),
        ]
    )
    with tripwire.isolation_scope():
        urllib.request.urlopen(f"{server.url}/status/200", timeout=5).read()
        with httpx.Client() as client:
            client.get(f"{server.url}/status/201")
            client.get(f"{server.url}/status/404")
        tripwire.capture_message("traced")
    tripwire.flush(5)
    sent = [h.get("sentry-trace") for h in server.headers]
    assert sent[2] is None  # /status/404 does not match
    trace_id = events[0]["contexts"]["trace"]["trace_id"]
    for value in sent[:2]:
        assert value is not None
        tid, span = value.split("-")
        assert tid == trace_id and len(span) == 16


def test_invalid_trace_target_is_a_configuration_error() -> None:
    """A trace_propagation_targets entry that is not a valid regular expression raises at setup."""
    from tripwire.integrations.stdlib import StdlibIntegration

    with pytest.raises(tripwire.ConfigurationError, match="trace_propagation_targets"):
        StdlibIntegration(trace_propagation_targets=["(unclosed"])
