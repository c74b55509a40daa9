"""Kept-alive HTTP connections for the sender threads: the standard library's ``http.client``.

One pool per sender thread (never shared between threads), one connection per (scheme, host, port),
an explicit timeout for connecting and for every read, ``TCP_NODELAY``. A failure to connect raises
:class:`Unreachable` (the backend is down: not the payload's fault); any other failure is an
``OSError`` or ``http.client.HTTPException`` from the exchange.

Proxies: ``proxy=None`` reads ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` from the environment
(as curl and requests do), ``proxy=""`` never uses one, and a URL (``http://user:pass@proxy:3128``)
is used for every request. https goes through a ``CONNECT`` tunnel, so TLS is end to end; plain
http is forwarded with the absolute URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import http.client
    import socket
    import ssl

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
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        proxy = self.proxy_for(parts.scheme, parts.hostname or "")
        key: _Key = (parts.scheme, parts.hostname or "", parts.port, proxy)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # Host as http.client would send it: the target's, also through a proxy.
        headers = {"Host": parts.netloc.rpartition("@")[2], **headers, "Content-Length": str(len(body))}
        if proxy and parts.scheme == "http":
            # Forwarded by the proxy: the request line carries the whole URL.
            path = f"http://{parts.netloc.rpartition('@')[2]}{path}"
            headers.update(_proxy_auth(proxy))
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
        # http.client connects (TLS, proxy tunnels); the exchange itself is done here, on its socket:
        # http.client parses every response's headers with the email package and sends the request
        # in two writes, which made it most of the sender thread's CPU per event (~3x this code).
        import http.client

        try:
            sock = conn.sock
            if sock is None:
                raise http.client.RemoteDisconnected("not connected")
            lines = [f"POST {path} HTTP/1.1", "Accept-Encoding: identity"]
            for name, value in headers.items():
                if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                    raise ValueError(f"invalid header {name!r}")
                lines.append(f"{name}: {value}")
            lines += ("", "")
            sock.sendall("\r\n".join(lines).encode("latin-1") + body)
            status, reply_headers, reply, keep = _read_response(sock)
            if not keep:
                conn.close()
                self._conns.pop(key, None)
        except (OSError, http.client.HTTPException, ValueError):
            conn.close()
            self._conns.pop(key, None)
            raise
        return status, reply_headers, reply


#: The most header bytes read from a response.
_MAX_HEAD = 64 * 1024


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, lower-cased headers, body up to MAX_RESPONSE_BYTES, connection reusable) of a response."""
    import http.client

    buf = b""
    while True:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > _MAX_HEAD:
                raise http.client.LineTooLong("response headers")
            chunk = sock.recv(65536)
            if not chunk:
                if buf:
                    raise http.client.IncompleteRead(buf)
                # Nothing at all: a kept-alive connection the server had closed (post() retries).
                raise http.client.RemoteDisconnected("Remote end closed connection without response")
            buf += chunk
        head, buf = buf[:end].decode("latin-1"), buf[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit():
            raise http.client.BadStatusLine(status_line)
        status = int(code)
        if status < 200:
            continue  # 100 Continue and other interim answers: the real one follows
        break
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = version != "HTTP/1.0" and "close" not in headers.get("connection", "").lower()
    if status in (204, 304):
        return status, headers, b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, complete = _read_chunked(sock, buf)
        return status, headers, body, keep and complete
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        want = int(length)
        take = min(want, MAX_RESPONSE_BYTES)
        while len(buf) < take:
            chunk = sock.recv(65536)
            if not chunk:
                raise http.client.IncompleteRead(buf)
            buf += chunk
        # The rest of a longer body is not read: the connection is closed instead.
        return status, headers, buf[:take], keep and want <= MAX_RESPONSE_BYTES and len(buf) == want
    # No length: the body lasts until the server closes the connection.
    while len(buf) < MAX_RESPONSE_BYTES:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return status, headers, buf[:MAX_RESPONSE_BYTES], False


def _read_chunked(sock: socket.socket, buf: bytes) -> tuple[bytes, bool]:
    """A chunked body (up to MAX_RESPONSE_BYTES) and whether it was read to its end."""
    import http.client

    out = b""
    while True:
        while b"\r\n" not in buf:
            if len(buf) > _MAX_HEAD:
                raise http.client.LineTooLong("chunk size")
            chunk = sock.recv(65536)
            if not chunk:
                raise http.client.IncompleteRead(out)
            buf += chunk
        size_line, _, buf = buf.partition(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.HTTPException(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            # Trailers, if any, end with an empty line; a plain end is just "\r\n".
            while b"\r\n\r\n" not in b"\r\n" + buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return out, False
                buf += chunk
            return out, True
        if len(out) + size > MAX_RESPONSE_BYTES:
            return out, False  # not worth reading on: the connection is closed instead
        while len(buf) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise http.client.IncompleteRead(out)
            buf += chunk
        out += buf[:size]
        buf = buf[size + 2 :]


def _proxy_auth(proxy: str) -> dict[str, str]:
    """``Proxy-Authorization`` for credentials in the proxy URL (none without)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.username is None:
        return {}
    import base64

    raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
