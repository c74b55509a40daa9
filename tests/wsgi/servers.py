"""Serve a WSGI app with a real waitress server on 127.0.0.1 (in a thread), and a small HTTP client."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


@contextmanager
def waitress_server(app: Any, threads: int = 8) -> Iterator[str]:
    """Serve ``app`` with waitress on a free port until the block ends; yields the base URL."""
    from waitress.server import BaseWSGIServer, create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    assert isinstance(server, BaseWSGIServer)  # one host and port: one server, not a MultiSocketServer
    # types-waitress omits the attribute BaseWSGIServer.__init__ sets (the port actually bound).
    port = server.effective_port  # type: ignore[attr-defined]
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:
            if not stopping.is_set():  # closing the socket under the loop ends it with EBADF
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stopping.set()
        # Wait for the worker threads: a request still being logged must not reach the next test.
        server.task_dispatcher.shutdown(timeout=5)
        server.close()
        thread.join(5)


def request(
    address: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Reply:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    finally:
        conn.close()
