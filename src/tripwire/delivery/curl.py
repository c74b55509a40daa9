"""Kept-alive HTTP connections through libcurl (the optional ``pycurl``), for the sender threads.

The same exchange as :class:`~tripwire.delivery.connections.ConnectionPool` (``post`` answers
status, lower-cased headers and at most ``MAX_RESPONSE_BYTES`` of the body; ``Unreachable`` when it
cannot even connect; the same proxy choice, CA bundle and one timeout for the whole exchange), but
libcurl writes the request and reads the answer in C, with the GIL released for the whole
exchange: ``http.client`` holds the GIL for most of its ~85-130 µs of CPU per POST (request line,
header validation, ``email.parser`` for the answer), time the application's threads then wait for.
Measured in bench/RESULTS.md ("Tracing over HTTP"). libcurl frames and parses the HTTP; this
module only hands it the request and collects the header lines it reports.

Chosen with ``http_client="pycurl"`` on an HTTP reporter (``pip install pycurl``).
"""

from __future__ import annotations

from typing import Any

from .connections import MAX_RESPONSE_BYTES, ConnectionPool, Unreachable

#: libcurl's error codes (``CURLE_*``) that mean the backend could not be reached at all.
_UNREACHABLE = frozenset({5, 6, 7})  # could not resolve the proxy, the host; could not connect
_TIMED_OUT = 28
_WRITE_ERROR = 23  # what our write callback returns when the answer is longer than we keep


class CurlPool(ConnectionPool):
    """One libcurl handle per sender thread: libcurl keeps its connections alive itself."""

    def __init__(self, timeout: float, ca_file: str | None = None, proxy: str | None = None) -> None:
        super().__init__(timeout, ca_file, proxy)
        import pycurl  # only on the sender thread of a reporter that asked for it

        self._pycurl: Any = pycurl
        curl = self._curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)  # timeouts without SIGALRM: we are not the main thread
        curl.setopt(pycurl.TIMEOUT_MS, max(1, int(timeout * 1000)))  # the whole exchange
        curl.setopt(pycurl.TCP_NODELAY, 1)
        curl.setopt(pycurl.WRITEFUNCTION, self._on_body)
        curl.setopt(pycurl.HEADERFUNCTION, self._on_header)
        if ca_file:
            curl.setopt(pycurl.CAINFO, ca_file)
        self._body: list[bytes] = []
        self._kept = 0
        self._cut = False
        self._headers: dict[str, str] = {}
        self._proxy_of: dict[str, str] = {}

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        pycurl = self._pycurl
        curl = self._curl
        lines = []
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"invalid header {name!r}")  # as http.client: nothing is sent
            lines.append(f"{name}: {value}")
        lines.append("Expect:")  # no 100-continue round trip before a body
        proxy = self._proxy_of.get(url)
        if proxy is None:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            proxy = self._proxy_of[url] = self.proxy_for(parts.scheme, parts.hostname or "")
        curl.setopt(pycurl.URL, url)
        # Always set: "" is "no proxy", also none from libcurl's own reading of the environment, so
        # the choice is ConnectionPool's (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, or the one given).
        curl.setopt(pycurl.PROXY, proxy)
        curl.setopt(pycurl.HTTPHEADER, lines)
        curl.setopt(pycurl.POSTFIELDSIZE, len(body))
        curl.setopt(pycurl.POSTFIELDS, body)
        self._body = []
        self._kept = 0
        self._cut = False
        self._headers = {}
        try:
            curl.perform()
        except pycurl.error as exc:
            code = exc.args[0] if exc.args else 0
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            if code == _WRITE_ERROR and self._cut:
                # We stopped reading a long answer: its start is what we keep. libcurl does not
                # reuse a connection whose answer was not read to its end.
                pass
            elif code in _UNREACHABLE:
                raise Unreachable(message) from None
            elif code == _TIMED_OUT:
                raise TimeoutError(message) from None
            else:
                raise OSError(message) from None
        status: int = curl.getinfo(pycurl.RESPONSE_CODE)
        return status, self._headers, b"".join(self._body)

    def close(self) -> None:
        self._curl.close()

    def abandon(self) -> None:
        """In a forked child: let go of the parent's connection without touching it.

        Freeing the handle closes its connection, and for TLS libcurl then reads from it and sends
        a close_notify: over the socket the child shares with the parent, whose kept-alive
        connection that would end (or whose answer it would read). The child's copy of the socket
        is pointed at /dev/null first, so whatever libcurl does on it goes nowhere.
        """
        try:
            fd = self._curl.getinfo(self._pycurl.ACTIVESOCKET)
            if isinstance(fd, int) and fd >= 0:
                import os

                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, fd)
                finally:
                    os.close(null)
        except Exception:
            pass

    # -- libcurl's callbacks (on this thread, during perform) ---------------------------------------
    def _on_body(self, data: bytes) -> int | None:
        room = MAX_RESPONSE_BYTES - self._kept
        if len(data) > room:
            self._body.append(data[:room])
            self._kept = MAX_RESPONSE_BYTES
            self._cut = True
            return 0  # fewer bytes than given: libcurl ends the transfer
        self._body.append(data)
        self._kept += len(data)
        return None

    def _on_header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):
            self._headers = {}  # a new answer (the real one after an interim 1xx)
            return
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            self._headers[name.strip().lower()] = value.strip()
