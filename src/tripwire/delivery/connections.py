"""Kept-alive HTTP connections for the sender threads: the standard library's ``http.client``.

``http.client`` writes every request and parses every response (status line, headers, chunked or
length-framed bodies, interim 1xx answers): no HTTP/1.1 is written or parsed here.

One pool per sender thread (never shared between threads), one connection per (scheme, host, port),
an explicit timeout for connecting, for sending and for the whole answer (a server that trickles its
answer a byte at a time, each within a read timeout, would otherwise hold the sender for hours),
``TCP_NODELAY``. A failure to connect raises :class:`Unreachable` (the backend is down: not the
payload's fault); any other failure is an ``OSError`` or ``http.client.HTTPException`` from the
exchange.

Proxies: ``proxy=None`` reads ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` from the environment
(as curl and requests do), ``proxy=""`` never uses one, and a URL (``http://user:pass@proxy:3128``)
is used for every request. https goes through a ``CONNECT`` tunnel, so TLS is end to end; plain
http is forwarded with the absolute URL.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import http.client
    import socket
    import ssl
    from typing import Any

#: The part of a response body kept (for error messages); the rest is not read.
MAX_RESPONSE_BYTES = 64 * 1024

_Key = tuple[str, str, "int | None", str]


class Unreachable(OSError):
    """Could not even connect: the backend is down, not this payload's fault."""


class ConnectionPool:
    """Kept-alive connections of one thread. ``post()`` answers (status, lower-cased headers, body)."""

    def __init__(self, timeout: float, ca_file: str | None = None, proxy: str | None = None) -> None:
        self.timeout = timeout
        self.ca_file = ca_file
        self.proxy = proxy
        self._conns: dict[_Key, http.client.HTTPConnection] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self._proxies: dict[tuple[str, str], str] = {}
        #: Per URL: (connection key, request target, the Host header and a proxy's credentials).
        #: A reporter posts to one or two URLs: parsed once, not per payload.
        self._targets: dict[str, tuple[_Key, str, dict[str, str]]] = {}

    def proxy_for(self, scheme: str, host: str) -> str:
        """The proxy URL to reach ``host`` with, or "" for a direct connection."""
        if self.proxy is not None:
            return self.proxy
        cached = self._proxies.get((scheme, host))
        if cached is None:
            # urllib.request is slow to import: only here, on the sender thread, and only once.
            from urllib.request import (  # type: ignore[attr-defined]  # not in typeshed
                getproxies_environment,
                proxy_bypass_environment,
            )

            proxies = getproxies_environment()
            cached = proxies.get(scheme, "")
            if cached and proxy_bypass_environment(host, proxies):
                cached = ""
            self._proxies[(scheme, host)] = cached
        return cached

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        import http.client

        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = self._target(url)
        key, path, extra = target
        headers = {**extra, **headers, "Content-Length": str(len(body))}
        conn = self._conns.get(key)
        if conn is not None:
            try:
                return self._exchange(key, conn, path, body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed meanwhile: one more go on a fresh one.
                pass
        conn = self._connect(key)
        return self._exchange(key, conn, path, body, headers)

    def _target(self, url: str) -> tuple[_Key, str, dict[str, str]]:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        proxy = self.proxy_for(parts.scheme, parts.hostname or "")
        key: _Key = (parts.scheme, parts.hostname or "", parts.port, proxy)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Host as http.client would send it: the target's, also through a proxy.
        extra = {"Host": parts.netloc.rpartition("@")[2]}
        if proxy and parts.scheme == "http":
            # Forwarded by the proxy: the request line carries the whole URL.
            path = f"http://{parts.netloc.rpartition('@')[2]}{path}"
            extra.update(_proxy_auth(proxy))
        return key, path, extra

    def abandon(self) -> None:
        """In a forked child: let go of the parent's connections. Dropping them closes only the
        child's copies of the sockets (Python's ssl sends no close_notify on close)."""

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _connect(self, key: _Key) -> http.client.HTTPConnection:
        import http.client
        import socket

        scheme, host, port, proxy = key
        connect_host, connect_port = host, port
        if proxy:
            from urllib.parse import urlsplit

            proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            connect_host, connect_port = proxy_parts.hostname or "", proxy_parts.port or 80
        conn: http.client.HTTPConnection
        if scheme == "https":
            if self._ssl_context is None:
                import ssl

                # The system's trust store (OpenSSL also reads SSL_CERT_FILE / SSL_CERT_DIR), or
                # the given bundle for a private CA.
                self._ssl_context = ssl.create_default_context(cafile=self.ca_file)
            conn = http.client.HTTPSConnection(
                connect_host, connect_port, timeout=self.timeout, context=self._ssl_context
            )
            if proxy:
                conn.set_tunnel(host, port, headers=_proxy_auth(proxy))
        else:
            conn = http.client.HTTPConnection(connect_host, connect_port, timeout=self.timeout)
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
            # http.client writes the head and the body in two sends (TCP_NODELAY, set at connect,
            # lets the second go at once) and refuses header names and values that would split the
            # request (CR, LF): ValueError, nothing sent.
            if conn.sock is not None:
                conn.sock.settimeout(self.timeout)  # a kept-alive socket has the last answer's deadline
            conn.request("POST", path, body, headers)
            conn.response_class = _answer_within(time.monotonic() + self.timeout)
            response = conn.getresponse()
            # Only the start of the body is kept (error messages quote it); a longer one is not read
            # on: the connection is closed instead of draining it.
            reply = response.read(MAX_RESPONSE_BYTES)
            reply_headers = {name.lower(): value for name, value in response.getheaders()}
            status = response.status
            reusable = response.isclosed() and not response.will_close
        except (OSError, http.client.HTTPException, ValueError):
            conn.close()
            self._conns.pop(key, None)
            raise
        if not reusable:
            conn.close()
            self._conns.pop(key, None)
        return status, reply_headers, reply


class _DeadlineReader(io.RawIOBase):
    """The socket's reader, each read given only what is left of one deadline for the whole answer."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._reader = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer took longer than the timeout")
        self._sock.settimeout(left)
        count: int | None = self._reader.readinto(buffer)
        return count

    def close(self) -> None:
        self._reader.close()
        super().close()


class _DeadlineSocket:
    """What http.client's response reads from: ``makefile()`` is all it asks of the socket."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


_response_classes: list[Any] = []


def _answer_within(deadline: float) -> Any:
    """A ``response_class`` for http.client whose reads all end by ``deadline``."""
    if not _response_classes:
        import functools
        import http.client

        class DeadlineResponse(http.client.HTTPResponse):
            def __init__(self, sock: Any, *args: Any, deadline: float, **kwargs: Any) -> None:
                super().__init__(_DeadlineSocket(sock, deadline), *args, **kwargs)  # type: ignore[arg-type]

        _response_classes.append((DeadlineResponse, functools.partial))
    cls, partial = _response_classes[0]
    return partial(cls, deadline=deadline)


def _proxy_auth(proxy: str) -> dict[str, str]:
    """``Proxy-Authorization`` for credentials in the proxy URL (none without)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.username is None:
        return {}
    import base64

    raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
