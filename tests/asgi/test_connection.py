"""The Connection: the one object the middleware makes per request (scope holder, session, processor)."""

from __future__ import annotations

import contextvars
import gc
import threading
from collections.abc import Coroutine
from typing import Any

import tripwire
from tripwire import _scope
from tripwire._connection import Connection
from tripwire._scope import ScopeHolder
from tripwire.asgi import TripwireMiddleware
from tripwire.reporters.capture import CapturedEvents


def _http_scope(method: str = "GET", path: str = "/c") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.test"), (b"content-type", b"text/plain")],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"hello", "more_body": False}


async def _send(message: Any) -> None:
    return None


def _drive(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits on anything (the ASGI calls here return at once)."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the coroutine waited on something")


def test_every_thread_of_a_request_sees_its_connection_as_the_scope_holder(events: CapturedEvents) -> None:
    """Threads started inside a request (with its context) all use the one Connection it installed."""
    seen: list[ScopeHolder] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        start = threading.Barrier(16)

        def touch() -> None:
            start.wait()
            seen.append(_scope.isolation_holder())

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(touch,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seen.append(_scope.current_holder())

    _drive(TripwireMiddleware(app)(_http_scope(), _receive, _send))
    assert len(seen) == 17
    assert isinstance(seen[0], Connection) and all(holder is seen[0] for holder in seen)
    assert (seen[0].path, seen[0].scope["path"]) == ("/c", "/c")
    assert _scope.current_holder() is _scope._ROOT  # the enclosing scope is back after the request


def test_scope_setters_inside_a_request_change_only_that_request(events: CapturedEvents) -> None:
    """tripwire.set_tag() inside a request lands on its events, never outside or in the next request."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/tagged":
            tripwire.set_tag("inside", "yes")
        tripwire.capture_message(scope["path"])

    middleware = TripwireMiddleware(app)
    _drive(middleware(_http_scope(path="/tagged"), _receive, _send))
    _drive(middleware(_http_scope(path="/plain"), _receive, _send))
    tripwire.flush(5)
    tagged, plain = sorted(events, key=lambda e: e["logentry"]["message"], reverse=True)
    assert tagged["tags"]["inside"] == "yes" and tagged["request"]["url"] == "http://example.test/tagged"
    assert "inside" not in plain.get("tags", {})
    assert "inside" not in _scope.current_holder().data.tags


def test_a_new_scope_inside_a_request_keeps_the_request_as_its_unit_of_work(events: CapturedEvents) -> None:
    """new_scope() inside a request forks the scope, but the last event id goes to the request."""
    ids: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with tripwire.new_scope():
            tripwire.set_tag("fork", "1")
            ids.append(tripwire.capture_message("in a fork"))
        ids.append(tripwire.last_event_id())

    _drive(TripwireMiddleware(app)(_http_scope(), _receive, _send))
    tripwire.flush(5)
    assert ids[0] is not None and ids == [ids[0], ids[0]]
    (event,) = events
    assert event["tags"]["fork"] == "1" and event["request"]["url"] == "http://example.test/c"


def test_watched_requests_leave_no_reference_cycle_behind(events: CapturedEvents) -> None:
    """A request whose body and status are watched is freed by reference counting, not left to the gc."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = TripwireMiddleware(app, track_response_status=True)
    gc.collect()
    gc.disable()
    try:
        for _ in range(200):
            _drive(middleware(_http_scope(method="POST"), _receive, _send))
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < 200, f"{unreachable} objects were left to the garbage collector"


def test_a_body_over_the_limit_is_noted_by_size_only(events: CapturedEvents) -> None:
    """The body copy keeps up to max_request_body_size bytes; beyond that the event says how many."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        tripwire.capture_message("with body")

    _drive(TripwireMiddleware(app, max_request_body_size=3)(_http_scope(method="POST"), _receive, _send))
    _drive(TripwireMiddleware(app, max_request_body_size=10)(_http_scope(method="POST"), _receive, _send))
    tripwire.flush(5)
    over, within = (event["request"]["data"] for event in events)
    assert over == "[5 bytes, over max_request_body_size: not sent]"
    assert within == "hello"
