"""Tornado for real: a tornado.web.Application on 127.0.0.1 with tripwire.init() only (the
integration hooks Tornado by itself): uncaught handler errors reported once with URL pattern, user and
tags set in the handler, scrubbed request, isolated under concurrency, sessions counted, and Tornado's
own responses unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents

from ..asgi.conftest import settle, wait_sessions

pytest.importorskip("tornado.web")
import tornado.web as tornado_web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError


class Ok(tornado_web.RequestHandler):
    def get(self) -> None:
        self.write("ok")


class Item(tornado_web.RequestHandler):
    async def get(self, iid: str) -> None:
        tripwire.set_user({"id": f"user-{iid}"})
        tripwire.set_tag("item", iid)
        await asyncio.sleep(0.01)  # let the other requests' handlers run in between
        tripwire.add_breadcrumb(f"crumb of {iid}")
        raise LookupError(f"item {iid}")


class Missing(tornado_web.RequestHandler):
    def get(self) -> None:
        raise tornado_web.HTTPError(404)


def _app() -> Any:
    return tornado_web.Application([("/ok", Ok), (r"/items/([0-9]+)", Item), ("/missing", Missing)])


def _run(paths: list[str], *, concurrent: bool = False, headers: dict[str, str] | None = None) -> list[int]:
    async def main() -> list[int]:
        server = _app().listen(0, address="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        client = AsyncHTTPClient()

        async def one(path: str) -> int:
            try:
                response = await client.fetch(f"http://127.0.0.1:{port}{path}", headers=headers)
                return int(response.code)
            except HTTPClientError as exc:
                return int(exc.code)

        try:
            if concurrent:
                return list(await asyncio.gather(*(one(path) for path in paths)))
            return [await one(path) for path in paths]
        finally:
            server.stop()
            await server.close_all_connections()

    return asyncio.run(main())


def test_an_uncaught_handler_error_is_reported_once_with_url_pattern_user_and_tag(
    start: Callable[..., CapturedEvents],
) -> None:
    events = start(release="1.0")
    statuses = _run(["/items/7?page=2&token=abc"], headers={"Authorization": "Bearer s3cr3t"})
    assert statuses == [500]
    (event,) = settle(events, 1)
    exc = event["exception"]["values"][-1]
    assert (exc["type"], exc["value"]) == ("LookupError", "item 7")
    assert exc["mechanism"]["type"] == "tornado"
    assert event["transaction"] == "/items/([0-9]+)"
    assert event["user"]["id"] == "user-7" and event["tags"]["item"] == "7"
    req = event["request"]
    assert req["method"] == "GET" and req["url"].endswith("/items/7")
    assert "abc" not in req["query_string"] and "page=2" in req["query_string"]
    assert "s3cr3t" not in json.dumps(req["headers"])


def test_tornados_responses_are_unchanged_and_http_errors_below_500_not_reported(
    start: Callable[..., CapturedEvents],
) -> None:
    bare = _run(["/ok", "/missing", "/items/1"])
    events = start(release="1.0")
    assert _run(["/ok", "/missing", "/items/1"]) == bare == [200, 404, 500]
    reported = settle(events, 1)
    assert [e["exception"]["values"][-1]["type"] for e in reported] == ["LookupError"]


def test_concurrent_requests_each_report_only_their_own_user_tag_and_breadcrumbs(
    start: Callable[..., CapturedEvents],
) -> None:
    events = start(release="1.0")
    count = 30
    assert _run([f"/items/{i}" for i in range(count)], concurrent=True) == [500] * count
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
    _run(["/ok", "/ok", "/missing", "/items/1"])
    assert wait_sessions(events, 4) == {"exited": 3, "crashed": 1}


def test_without_the_integration_nothing_is_hooked(start: Callable[..., CapturedEvents]) -> None:
    events = start(release="1.0", disabled_integrations=["tornado", "logging"])
    assert _run(["/items/1"]) == [500]
    tripwire.flush(5)
    assert list(events) == []
