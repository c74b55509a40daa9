"""Sanic for real, in ASGI mode under uvicorn on 127.0.0.1, wrapped in tripwire.asgi.TripwireMiddleware:
a failing handler (which Sanic answers with its own 500 page) reported once with its route template,
the user and tag set in the handler and the scrubbed request; isolation under concurrent requests;
sessions; Sanic's responses unchanged."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import tripwire
from tripwire.asgi import TripwireMiddleware
from tripwire.reporters.capture import CapturedEvents

from ..asgi.conftest import settle, wait_sessions
from ..asgi.servers import serve

pytest.importorskip("sanic")
import sanic

_names = itertools.count()


def _app() -> Any:
    from sanic import response
    from sanic.exceptions import NotFound

    app = sanic.Sanic(f"tripwire_sanic_{next(_names)}")

    @app.get("/ok")
    async def ok(request: Any) -> Any:
        return response.text("ok")

    @app.get("/items/<iid:int>")
    async def item(request: Any, iid: int) -> Any:
        tripwire.set_user({"id": f"user-{iid}"})
        tripwire.set_tag("item", str(iid))
        await asyncio.sleep(0.01)  # let the other requests' handlers run in between
        raise LookupError(f"item {iid}")

    @app.get("/missing")
    async def missing(request: Any) -> Any:
        raise NotFound("no such item")

    return app


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    """One Sanic app per process (a second one, on a new event loop, never answers: Sanic's limit),
    served under /bare as it is and everywhere else through TripwireMiddleware."""
    app = _app()
    wrapped = TripwireMiddleware(app)

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/bare/"):
            scope = {**scope, "path": scope["path"][5:], "raw_path": scope["raw_path"][5:]}
            await app(scope, receive, send)
        else:
            await wrapped(scope, receive, send)

    with serve(dispatch, "uvicorn", lifespan="on") as server:
        yield server.url


def _get(base: str, paths: list[str], headers: dict[str, str] | None = None) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            return list(await asyncio.gather(*(client.get(path, headers=headers) for path in paths)))

    return asyncio.run(main())


def test_a_failing_handler_is_reported_once_with_route_user_tag_and_scrubbed_request(
    base: str,
    start: Callable[..., CapturedEvents],
) -> None:
    events = start(release="1.0")
    (reply,) = _get(base, ["/items/7?page=2&token=abc"], headers={"Authorization": "Bearer s3cr3t"})
    assert reply.status_code == 500
    (event,) = settle(events, 1)
    exc = event["exception"]["values"][-1]
    assert (exc["type"], exc["value"]) == ("LookupError", "item 7")
    assert exc["mechanism"]["type"] == "sanic"
    assert event["transaction"] == "/items/<iid:int>"
    assert event["user"]["id"] == "user-7" and event["tags"]["item"] == "7"
    req = event["request"]
    assert "abc" not in req["query_string"] and "page=2" in req["query_string"]
    assert "s3cr3t" not in json.dumps(req["headers"])


def test_sanics_responses_are_unchanged(base: str, start: Callable[..., CapturedEvents]) -> None:
    paths = ["/ok", "/missing", "/items/1"]
    start(release="1.0")
    bare = [(r.status_code, r.headers.get("content-type")) for r in _get(base, ["/bare" + p for p in paths])]
    wrapped = [(r.status_code, r.headers.get("content-type")) for r in _get(base, paths)]
    assert wrapped == bare
    assert [status for status, _ in wrapped] == [200, 404, 500]


def test_concurrent_requests_each_report_only_their_own_user_and_tag(
    base: str,
    start: Callable[..., CapturedEvents],
) -> None:
    events = start(release="1.0")
    count = 30
    replies = _get(base, [f"/items/{i}" for i in range(count)])
    assert [r.status_code for r in replies] == [500] * count
    reported = settle(events, count)
    assert len(reported) == count
    for event in reported:
        iid = event["tags"]["item"]
        assert event["user"]["id"] == f"user-{iid}"
        assert event["exception"]["values"][-1]["value"] == f"item {iid}"


def test_release_health_counts_the_failing_request_as_crashed(
    base: str, start: Callable[..., CapturedEvents]
) -> None:
    events = start(release="1.0")
    for path in ("/ok", "/missing", "/items/1"):
        _get(base, [path])
    totals = wait_sessions(events, 3)
    assert totals.get("crashed", 0) + totals.get("errored", 0) == 1
    assert totals.get("exited") == 2
