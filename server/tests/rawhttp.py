"""HTTP/1.1 over a bare socket, for clients that misbehave on purpose (trickle, pause, stop)."""

from __future__ import annotations

import socket
import time


class RawClient:
    """One TCP connection to 127.0.0.1 that sends exactly the bytes a test gives it."""

    def __init__(self, port: int, timeout: float = 5.0, source: str | None = None) -> None:
        # ``source``: another loopback address to come from (Linux routes 127.0.0.0/8 to lo).
        address = (source, 0) if source else None
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=address)

    def send(self, data: bytes) -> bool:
        """Send ``data``; False if the server has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def response(self, timeout: float = 3.0) -> tuple[int | None, bytes]:
        """(status, raw response) read until the server closes or ``timeout`` passes; status None
        when nothing came back in time, 0 when the server closed without answering."""
        self.sock.settimeout(timeout)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                return (0 if not data else _status(data)), data
            if not chunk:
                return (_status(data) if data else 0), data
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                return _status(data), data
        return (_status(data) if data else None), data

    def closed_by_server(self, timeout: float) -> bool:
        """True once the server closes the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def request_head(
    path: str, *, length: int | None = None, headers: dict[str, str] | None = None, method: str = "POST"
) -> bytes:
    """The request line and headers of a request (``length``: the Content-Length to announce)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
