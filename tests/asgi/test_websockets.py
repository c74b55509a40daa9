"""Websocket connections under uvicorn and hypercorn, for every framework that has websockets
(Django needs Channels for that, which is not part of Django's own ASGI handler)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import connect

from tripwire.reporters.capture import CapturedEvents

from .apps import WEBSOCKET_FRAMEWORKS, WS_ROUTE, make_app
from .conftest import settle, wait_sessions
from .servers import SERVERS, Running, serve

MATRIX = [(fw, srv) for fw in WEBSOCKET_FRAMEWORKS for srv in SERVERS]


@pytest.fixture(scope="module", params=MATRIX, ids=[f"{fw}-{srv}" for fw, srv in MATRIX])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Running]]:
    framework, kind = request.param
    with serve(make_app(framework), kind) as running:
        assert running.thread.is_alive(), running.error
        yield framework, running


def _talk(url: str, message: str) -> None:
    with connect(url, open_timeout=5) as socket:
        socket.send(message)
        try:
            socket.recv(timeout=5)
        except Exception:
            pass  # the server closes the connection after the handler failed


def test_websocket_error_is_reported_with_its_request(
    served: tuple[str, Running], events: CapturedEvents
) -> None:
    """An exception in a websocket handler is one event with the ws:// URL, the route and a crumb."""
    framework, running = served
    _talk(f"{running.ws_url}/ws?token=t1", "hello")
    (event,) = settle(events, 1)
    (exc,) = [v for v in event["exception"]["values"] if v["type"] == "ValueError"]
    assert exc["value"] == "ws hello"
    assert exc["mechanism"]["handled"] is False
    assert event["request"]["url"] == f"{running.ws_url}/ws"
    assert event["request"]["query_string"] == "token=[Filtered]"
    assert "method" not in event["request"]
    assert event["transaction"] == WS_ROUTE[framework]
    assert event["breadcrumbs"]["values"][0]["category"] == "websocket"


def test_concurrent_websockets_are_isolated(served: tuple[str, Running], events: CapturedEvents) -> None:
    """Twenty concurrent failing websocket connections each report only their own message and query."""
    _, running = served

    async def one(i: int) -> None:
        async with async_connect(f"{running.ws_url}/ws?who=c{i}", open_timeout=5) as socket:
            await socket.send(f"c{i}")
            try:
                await asyncio.wait_for(socket.recv(), 5)
            except Exception:
                pass

    async def all_of_them() -> None:
        await asyncio.gather(*(one(i) for i in range(20)))

    asyncio.run(all_of_them())
    captured = settle(events, 20)
    assert len(captured) == 20
    for event in captured:
        (exc,) = [v for v in event["exception"]["values"] if v["type"] == "ValueError"]
        who = exc["value"].removeprefix("ws ")
        assert event["request"]["query_string"] == f"who={who}"


def test_a_crashed_websocket_is_a_crashed_session(
    served: tuple[str, Running], events: CapturedEvents
) -> None:
    """A websocket connection is one release-health session, crashed when its handler raised."""
    _, running = served
    _talk(f"{running.ws_url}/ws", "x")
    assert wait_sessions(events, 1) == {"crashed": 1}
