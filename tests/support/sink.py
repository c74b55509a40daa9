"""A real HTTP server on 127.0.0.1 that receives what reporters send, for tests and benchmarks.

It understands Sentry envelopes (gzip/deflate/br or plain) and BugSnag JSON payloads, keeps every
request, and can be told how to answer (status, headers, delay) to simulate outages and rate limits.

    with Sink() as sink:
        tripwire.init(sink.dsn)
        ...
        sink.wait_for_events(3)
"""

from __future__ import annotations

import gzip
import json
import select
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    items: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)
    envelope_header: dict[str, Any] | None = None
    json: Any = None


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"{}"
    #: Count a request only if its client still waits for the answer once ``delay`` is over. A process
    #: that ended before its delivery was answered did not deliver as far as it could know, even if
    #: its request had reached the kernel's buffers (and so this sink) before it ended.
    only_if_awaited: bool = False


def decode_body(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli

        return bytes(brotli.decompress(body))
    return body


def parse_envelope(data: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Split an envelope into its header and (item header, payload) pairs."""
    header_line, _, rest = data.partition(b"\n")
    header = json.loads(header_line) if header_line.strip() else {}
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            if rest.startswith(b"\n"):
                rest = rest[1:]
        items.append((item_header, payload))
    return header, items


def _client_left(conn: socket.socket) -> bool:
    """Whether the client closed its side: its socket is readable with nothing left to read."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class Sink:
    """Start with ``with Sink() as sink`` (or start()/stop()); see the module docstring."""

    def __init__(self, port: int = 0, tls: Any = None) -> None:
        """``tls``: an ``ssl.SSLContext`` (server side) to serve HTTPS instead of HTTP."""
        self.requests: list[Received] = []
        #: Every request, also those answered with an error status (``requests`` keeps only < 400).
        self.attempts: list[tuple[float, Received, int]] = []
        #: Requests left unanswered because their client had gone (``Answer.only_if_awaited``).
        self.abandoned: list[Received] = []
        self._connections: set[Any] = set()
        self.answer: Answer | Callable[[Received], Answer] = Answer()
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; without this, Nagle plus the client's delayed
            # ACK holds every response back ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with sink._cond:
                    sink._connections.add(self.connection)

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionError:
                    pass  # the client went away (closed while we were answering slowly): fine

            def finish(self) -> None:
                with sink._cond:
                    sink._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                try:
                    data = decode_body(raw, self.headers.get("Content-Encoding"))
                    if "envelope" in self.path:
                        received.envelope_header, received.items = parse_envelope(data)
                    else:
                        received.json = json.loads(data)
                except Exception as exc:  # keep what we got; tests look at it
                    received.json = {"_sink_parse_error": repr(exc)}
                answer = sink.answer(received) if callable(sink.answer) else sink.answer
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.only_if_awaited and _client_left(self.connection):
                    with sink._cond:
                        sink.abandoned.append(received)
                        sink._cond.notify_all()
                    return
                with sink._cond:
                    sink.attempts.append((time.monotonic(), received, answer.status))
                    if answer.status < 400:
                        sink.requests.append(received)
                    sink._cond.notify_all()
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Sink:
        # A short poll: stop() (shutdown) waits for the serving loop to notice, up to one interval,
        # and the suite starts and stops a sink several hundred times (at 50 ms that was 25 ms a
        # test on average; 100 idle wake-ups a second cost nothing measurable).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open (kept-alive) connection: the server is really gone."""
        self._server.shutdown()
        self._server.server_close()
        with self._cond:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def dsn(self) -> str:
        return f"{self.scheme}://publickey@127.0.0.1:{self.port}/1"

    # -- what arrived --------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every request received so far (a sink that several tests share in turn)."""
        with self._cond:
            self.requests.clear()
            self.attempts.clear()
            self.abandoned.clear()

    def discard(self, predicate: Callable[[Received], bool]) -> None:
        """Forget the requests for which ``predicate`` holds (a test's own markers)."""
        with self._cond:
            self.requests[:] = [r for r in self.requests if not predicate(r)]
            self.attempts[:] = [a for a in self.attempts if not predicate(a[1])]

    def items(self, item_type: str) -> list[Any]:
        """Parsed JSON payloads of every envelope item of ``item_type`` received so far."""
        with self._cond:
            requests = list(self.requests)
        return [json.loads(p) for r in requests for h, p in r.items if h.get("type") == item_type]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.items("event")

    @property
    def bugsnag_events(self) -> list[dict[str, Any]]:
        with self._cond:
            requests = list(self.requests)
        return [e for r in requests if isinstance(r.json, dict) for e in r.json.get("events", [])]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # 50 ms: a predicate may depend on state the sink does not notify about.
                self._cond.wait(min(remaining, 0.05))
        return True

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` Sentry events arrived; returns them (fewer on timeout)."""
        self.wait_until(lambda: len(self.events) >= count, timeout)
        return self.events


@contextmanager
def running_sink() -> Iterator[Sink]:
    with Sink() as sink:
        yield sink
