"""aiohttp for real: a web.Application with tripwire.aiohttp.middleware served by aiohttp's own
server on 127.0.0.1 (failing handlers reported with route template, scrubbed request, user and tags
set in the handler, isolated under concurrency, sessions counted, responses unchanged), and
ClientSession requests leaving breadcrumbs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

import tripwire
import tripwire.aiohttp
from tripwire.reporters.capture import CapturedEvents

from ..asgi.conftest import settle, wait_sessions

web = pytest.importorskip("aiohttp.web")
import aiohttp  # noqa: E402


def _make_app(with_tripwire: bool = True) -> Any:
    async def ok(request: Any) -> Any:
        return web.Response(text="ok")

    async def item(request: Any) -> Any:
        iid = request.match_info["iid"]
        tripwire.set_user({"id": f"user-{iid}"})
        tripwire.set_tag("item", iid)
        await asyncio.sleep(0.01)  # let the other requests' handlers run in between
        tripwire.add_breadcrumb(f"crumb of {iid}")
        raise LookupError(f"item {iid}")

    async def echo(request: Any) -> Any:
        payload = await request.json()
        if request.headers.get("X-Fail"):
            raise ValueError("echo failed")
        return web.json_response(payload)

    async def missing(request: Any) -> Any:
        raise web.HTTPNotFound(text="no such item")

    app = web.Application(middlewares=[tripwire.aiohttp.middleware] if with_tripwire else [])
    app.router.add_get("/ok", ok)
    app.router.add_get("/items/{iid}", item)
    app.router.add_post("/echo", echo)
    app.router.add_get("/missing", missing)
    return app


async def _serve(app: Any, body: Callable[[str], Any]) -> Any:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await body(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def test_a_failing_handler_is_reported_with_route_user_tag_and_scrubbed_request(
    start: Callable[..., CapturedEvents],
) -> None:
    events = start(release="1.0")

    async def body(base: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{base}/items/7?page=2&token=abc", headers={"Authorization": "Bearer s3cr3t"}
            ) as response,
        ):
            return response.status, await response.text()

    status, _ = asyncio.run(_serve(_make_app(), body))
    assert status == 500
    (event,) = settle(events, 1)
    exc = event["exception"]["values"][-1]
    assert (exc["type"], exc["value"]) == ("LookupError", "item 7")
    assert exc["mechanism"]["type"] == "aiohttp"
    assert event["transaction"] == "/items/{iid}"
    assert event["user"]["id"] == "user-7" and event["tags"]["item"] == "7"
    req = event["request"]
    assert req["method"] == "GET" and req["url"].endswith("/items/7")
    assert "abc" not in req["query_string"] and "page=2" in req["query_string"]
    assert "s3cr3t" not in json.dumps(req["headers"])


def test_responses_are_the_same_with_and_without_the_middleware(start: Callable[..., CapturedEvents]) -> None:
    start(release="1.0")

    async def body(base: str) -> list[tuple[int, str]]:
        replies = []
        async with aiohttp.ClientSession() as session:
            for method, path, data in (
                ("GET", "/ok", None),
                ("GET", "/missing", None),
                ("POST", "/echo", {"a": 1}),
                ("GET", "/items/1", None),
            ):
                async with session.request(method, base + path, json=data) as response:
                    replies.append((response.status, await response.text()))
        return replies

    bare = asyncio.run(_serve(_make_app(with_tripwire=False), body))
    wrapped = asyncio.run(_serve(_make_app(), body))
    assert wrapped == bare
    assert [status for status, _ in wrapped] == [200, 404, 200, 500]


def test_the_body_the_handler_read_is_attached_scrubbed(start: Callable[..., CapturedEvents]) -> None:
    events = start(release="1.0")

    async def body(base: str) -> int:
        async with aiohttp.ClientSession() as session:
            payload = {"name": "ann", "password": "hunter2"}
            async with session.post(f"{base}/echo", json=payload, headers={"X-Fail": "1"}) as response:
                return response.status

    assert asyncio.run(_serve(_make_app(), body)) == 500
    (event,) = settle(events, 1)
    assert event["request"]["data"]["name"] == "ann"
    assert event["request"]["data"]["password"] != "hunter2"


def test_an_http_error_below_500_is_not_reported(start: Callable[..., CapturedEvents]) -> None:
    events = start(release="1.0")

    async def body(base: str) -> int:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/missing") as response:
            return response.status

    assert asyncio.run(_serve(_make_app(), body)) == 404
    tripwire.flush(5)
    assert list(events) == []


def test_concurrent_requests_each_report_only_their_own_user_tag_and_breadcrumbs(
    start: Callable[..., CapturedEvents],
) -> None:
    events = start(release="1.0")
    count = 40

    async def body(base: str) -> list[int]:
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> int:
                async with session.get(f"{base}/items/{i}") as response:
                    return response.status

            return list(await asyncio.gather(*(one(i) for i in range(count))))

    assert asyncio.run(_serve(_make_app(), body)) == [500] * count
    reported = settle(events, count)
    assert len(reported) == count
    for event in reported:
        iid = event["tags"]["item"]
        assert event["user"]["id"] == f"user-{iid}"
        assert event["exception"]["values"][-1]["value"] == f"item {iid}"
        messages = [c.get("message") for c in event["breadcrumbs"]["values"] if c.get("message")]
        assert messages == [f"crumb of {iid}"]


def test_release_health_counts_one_session_per_request(start: Callable[..., CapturedEvents]) -> None:
    events = start(release="1.0")

    async def body(base: str) -> None:
        async with aiohttp.ClientSession() as session:
            for path in ("/ok", "/ok", "/missing", "/items/1"):
                async with session.get(base + path) as response:
                    await response.read()

    asyncio.run(_serve(_make_app(), body))
    assert wait_sessions(events, 4) == {"exited": 3, "crashed": 1}


def test_client_session_requests_leave_breadcrumbs_with_method_url_and_status(
    start: Callable[..., CapturedEvents],
) -> None:
    events = start(release="1.0")

    async def body(base: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/ok?token=abc") as response:
                await response.read()
            async with session.get(f"{base}/missing") as response:
                await response.read()
            tripwire.capture_message("after the calls")

    asyncio.run(_serve(_make_app(with_tripwire=False), body))
    (event,) = settle(events, 1)
    crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("category") == "aiohttp"]
    assert [(c["data"]["method"], c["data"]["status_code"]) for c in crumbs] == [("GET", 200), ("GET", 404)]
    assert crumbs[0]["data"]["url"].split("?")[0].endswith("/ok")
    assert "abc" not in json.dumps(crumbs[0])
