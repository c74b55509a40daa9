"""Fixtures for the tracing tests: a traced capturing client, and a loopback HTTP server to call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents, CaptureReporter


@pytest.fixture
def traced() -> Iterator[CapturedEvents]:
    """A tripwire client tracing every unit of work, keeping errors and transactions in memory."""
    captured = CapturedEvents()
    tripwire.init(
        reporters=[CaptureReporter(captured)],
        release="1.0",
        environment="test",
        traces_sample_rate=1.0,
        include_local_variables=False,
    )
    yield captured


class Upstream:
    """A loopback HTTP server that answers 200 (or the status in ``?status=``) and keeps the
    headers of every request it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append({k.lower(): v for k, v in self.headers.items()})
                status = 200
                if "status=" in self.path:
                    status = int(self.path.rsplit("status=", 1)[1][:3])
                body = b"upstream"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A short poll: shutdown() waits for the serving loop to notice, up to one interval (the
        # default 0.5 s was most of a tracing test's wall time).
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
