"""A backend on 127.0.0.1 that fails the way networks and servers fail, then recovers.

:class:`FaultyBackend` listens on its own port. While it is faulting, every new connection gets the
fault; once it recovers (``recover()``, or by itself after ``times`` faulted connections) new
connections are relayed byte for byte to a healthy :class:`~tests.support.sink.Sink`, which then
counts what arrived. Faults:

- ``refuse``: nothing listens (connection refused); the port is bound again on recovery.
- ``reset``: read part of the request, then reset the connection (RST, not FIN).
- ``trickle``: read the request, then answer one byte per ``trickle_interval`` seconds (1 by
  default), forever: a status line, then header bytes that never end.
- ``garbage``: read the request, then answer bytes that are not an HTTP response (a few kinds, in turn).
- ``untrusted-tls``: TLS with a certificate from a CA the client does not know (after recovery the
  certificate comes from ``trusted_ca``).
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import threading
import time
from typing import Any

from tests.support.sink import Sink

FAULTS = ("refuse", "reset", "trickle", "garbage", "untrusted-tls")

#: Answers that are not HTTP (nor a 2xx): each garbage connection gets the next one.
GARBAGE = (
    b"\x00\x01\x02\xff\xfe binary junk\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",  # then the connection closes: no header end
    b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n",  # no status code
    b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 70_000,  # headers past any limit
    b"\r\n\r\n",
    b"HTTP/1.1 2OO OK\r\n\r\n",  # letters O, not zeros
)


def _read_request(conn: socket.socket, limit: float = 5.0) -> bytes:
    """One request (headers and Content-Length body), or what came before the client stopped."""
    conn.settimeout(limit)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except OSError:
        return data


class FaultyBackend:
    """See the module docstring. ``url``/``dsn`` point here; ``backend`` receives what gets through."""

    def __init__(
        self,
        backend: Sink,
        fault: str,
        *,
        times: int | None = None,
        tls: Any = None,
        untrusted_tls: Any = None,
        trickle_interval: float = 1.0,
    ) -> None:
        """``tls``/``untrusted_tls``: server-side ``ssl.SSLContext``s (trusted, and for the fault)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.backend = backend
        self.fault = fault
        self.times = times
        self.trickle_interval = trickle_interval
        self._tls = tls
        self._untrusted_tls = untrusted_tls
        self.scheme = "https" if tls is not None else "http"
        #: Connections that got the fault, and connections relayed to the backend.
        self.faulted = 0
        self.relayed = 0
        self._faulting = True
        self._garbage = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = self._listen(0)
        if fault == "refuse":
            self._close_listener()  # the port stays ours in practice: nothing else binds it here

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FaultyBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        self._close_listener()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    def recover(self) -> None:
        """From now on new connections are relayed to the healthy backend."""
        with self._lock:
            self._faulting = False
        if self._listener is None and not self._stopped.is_set():
            self._listen(self.port)

    @property
    def faulting(self) -> bool:
        with self._lock:
            return self._faulting

    @property
    def dsn(self) -> str:
        return f"{self.scheme}://publickey@127.0.0.1:{self.port}/1"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    # -- serving -----------------------------------------------------------------------------------

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return int(listener.getsockname()[1])

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                fault = self._faulting
                if fault:
                    self.faulted += 1
                    if self.times is not None and self.faulted >= self.times:
                        self._faulting = False
                else:
                    self.relayed += 1
                self._sockets.add(conn)
            target = self._serve_fault if fault else self._relay
            threading.Thread(target=target, args=(conn,), daemon=True).start()

    def _wrap(self, conn: socket.socket, context: Any) -> socket.socket | None:
        try:
            conn.settimeout(5)
            wrapped: socket.socket = context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()  # the client refused our certificate: the fault did its job
            return None
        with self._lock:
            self._sockets.add(wrapped)
        return wrapped

    def _serve_fault(self, conn: socket.socket) -> None:
        try:
            if self.fault == "untrusted-tls":
                self._wrap(conn, self._untrusted_tls)
                return
            if self.fault == "reset":
                _read_request_part(conn)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            _read_request(conn)
            if self.fault == "garbage":
                with self._lock:
                    answer = GARBAGE[self._garbage % len(GARBAGE)]
                    self._garbage += 1
                conn.sendall(answer)
            elif self.fault == "trickle":
                answer = b"HTTP/1.1 200 OK\r\nX-Slow: "
                sent = 0
                while not self._stopped.wait(self.trickle_interval):
                    conn.sendall(answer[sent : sent + 1] if sent < len(answer) else b"a")
                    sent += 1
        except OSError:
            pass
        finally:
            self._forget(conn)

    def _relay(self, conn: socket.socket) -> None:
        client: socket.socket | None = conn
        if self._tls is not None:
            client = self._wrap(conn, self._tls)
        if client is None:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.backend.port), timeout=5)
        except OSError:
            self._forget(client)
            return
        try:
            _pump(client, upstream, self._stopped)
        except OSError:
            pass  # stop() closed the sockets under us
        finally:
            upstream.close()
            self._forget(client)

    def _forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(conn)
        try:
            conn.close()
        except OSError:
            pass


def _read_request_part(conn: socket.socket) -> None:
    """Read the start of a request only: the reset comes while the client is still sending."""
    conn.settimeout(5)
    try:
        conn.recv(100)
    except OSError:
        pass


def _pump(a: socket.socket, b: socket.socket, stopped: threading.Event) -> None:
    """Copy bytes both ways until either side closes."""
    for sock in (a, b):
        # Without it, Nagle and delayed ACKs hold every relayed answer back ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    a.setblocking(False)
    b.setblocking(False)
    peers = {a: b, b: a}
    while not stopped.is_set():
        # TLS sockets may hold decrypted bytes that select() cannot see.
        ready: list[socket.socket] = [s for s in (a, b) if isinstance(s, ssl.SSLSocket) and s.pending()]
        if not ready:
            ready, _, _ = select.select([a, b], [], [], 0.2)
        for sock in ready:
            try:
                data = sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                return
            if not data:
                return
            out = peers[sock]
            out.setblocking(True)
            try:
                out.sendall(data)
            except OSError:
                return
            finally:
                out.setblocking(False)


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
