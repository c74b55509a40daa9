"""Kept-alive HTTP connections for the sender threads: the standard library's ``http.client``.

One pool per sender thread (never shared between threads), one connection per (scheme, host, port),
an explicit timeout for connecting and for every read, ``TCP_NODELAY``. A failure to connect raises
:class:`Unreachable` (the backend is down: not the payload's fault); any other failure is an
``OSError`` or ``http.client.HTTPException`` from the exchange.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import http.client
    import ssl

#: The part of a response body kept (for error messages); the rest is not read.
MAX_RESPONSE_BYTES = 64 * 1024

_Key = tuple[str, str, "int | None"]


class Unreachable(OSError):
    """Could not even connect: the backend is down, not this payload's fault."""


class ConnectionPool:
    """Kept-alive connections of one thread. ``post()`` answers (status, lower-cased headers, body)."""

    def __init__(self, timeout: float, ca_file: str | None = None) -> None:
        self.timeout = timeout
        self.ca_file = ca_file
        self._conns: dict[_Key, http.client.HTTPConnection] = {}
        self._ssl_context: ssl.SSLContext | None = None

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        key: _Key = (parts.scheme, parts.hostname or "", parts.port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {**headers, "Content-Length": str(len(body))}
        conn = self._conns.get(key)
        if conn is not None:
            try:
                return self._exchange(key, conn, path, body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed meanwhile: one more go on a fresh one.
                pass
        conn = self._connect(key)
        return self._exchange(key, conn, path, body, headers)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _connect(self, key: _Key) -> http.client.HTTPConnection:
        import http.client
        import socket

        scheme, host, port = key
        conn: http.client.HTTPConnection
        if scheme == "https":
            if self._ssl_context is None:
                import ssl

                # The system's trust store (OpenSSL also reads SSL_CERT_FILE / SSL_CERT_DIR), or
                # the given bundle for a private CA.
                self._ssl_context = ssl.create_default_context(cafile=self.ca_file)
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._ssl_context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        try:
            # Headers and body may go out in separate writes: never let Nagle hold the second back.
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._conns[key] = conn
        return conn

    def _exchange(
        self, key: _Key, conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        import http.client

        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            reply = response.read(MAX_RESPONSE_BYTES)
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close or not response.isclosed():
                conn.close()
                self._conns.pop(key, None)
        except (OSError, http.client.HTTPException):
            conn.close()
            self._conns.pop(key, None)
            raise
        return response.status, reply_headers, reply
