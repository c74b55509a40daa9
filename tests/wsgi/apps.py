"""A plain WSGI application with one route per behaviour the middleware must handle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import tripwire


class StreamFailed(RuntimeError):
    pass


class CloseFailed(RuntimeError):
    pass


class ClosingBody:
    """A response iterable whose ``close()`` fails (after the body was sent)."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"all sent"

    def close(self) -> None:
        self.closed = True
        raise CloseFailed("close failed")


#: The last error each route raised, so that tests can check the very same object was re-raised.
raised: dict[str, BaseException] = {}
#: Guards the barrier of /isolate (the handlers of concurrent requests meet there).
isolate_lock = threading.Lock()


def plain_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/ok":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if path == "/boom":
        exc = raised["boom"] = ValueError("boom")
        raise exc
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks() -> Iterator[bytes]:
            yield b"first "
            yield b"second "
            raise StreamFailed("stream failed midway")

        return chunks()
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ClosingBody()
    if path == "/echo":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size)
        if environ.get("HTTP_X_FAIL"):
            raise ValueError("echo failed")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/unread":
        raise ValueError("failed before reading the body")
    if path == "/isolate":
        who = environ["QUERY_STRING"].split("=", 1)[1]
        tripwire.set_user({"id": who})
        tripwire.set_tag("who", who)
        time.sleep(0.01)  # let the other requests' handlers run in between
        tripwire.add_breadcrumb(f"crumb of {who}")
        raise ValueError(f"failed for {who}")
    if path == "/message":
        start_response("201 Created", [("Content-Type", "text/plain")])
        tripwire.capture_message("made it")
        return [b"created"]
    if path == "/unavailable":
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"down"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
