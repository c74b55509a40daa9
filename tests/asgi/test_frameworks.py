"""The framework and server matrix: Starlette, FastAPI, Litestar, Quart and Django under uvicorn and
hypercorn, over real HTTP on 127.0.0.1. Each (framework, server) pair is started once for the module."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents

from .apps import BOOM_ROUTE, FRAMEWORKS, make_app
from .conftest import settle, wait_sessions
from .servers import SERVERS, Running, serve

MATRIX = [(fw, srv) for fw in FRAMEWORKS for srv in SERVERS]


@pytest.fixture(scope="module", params=MATRIX, ids=[f"{fw}-{srv}" for fw, srv in MATRIX])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Running]]:
    framework, kind = request.param
    with serve(make_app(framework), kind) as running:
        assert running.thread.is_alive(), running.error
        yield framework, running


def _crumbs(event: dict[str, Any]) -> list[dict[str, Any]]:
    return list((event.get("breadcrumbs") or {}).get("values") or [])


def test_unhandled_error_is_reported_with_scrubbed_request_and_route(
    served: tuple[str, Running], events: CapturedEvents
) -> None:
    """An exception escaping a view becomes one event with the route, scrubbed request data and a crumb."""
    framework, running = served
    response = httpx.get(
        f"{running.url}/boom/3?token=abc&password=pw&api_key=k&page=2",
        headers={"Authorization": "Bearer secret", "X-Api-Key": "key", "Cookie": "sessionid=s3cr3t"},
    )
    assert response.status_code == 500
    (event,) = settle(events, 1)
    (exc,) = [v for v in event["exception"]["values"] if v["type"] == "ValueError"]
    assert exc["value"] == "boom 3"
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is False
    assert event["transaction"] == BOOM_ROUTE[framework]
    request = event["request"]
    assert request["method"] == "GET"
    assert request["url"] == f"{running.url}/boom/3"
    assert request["query_string"] == "token=[Filtered]&password=[Filtered]&api_key=[Filtered]&page=2"
    assert request["headers"]["authorization"] == "[Filtered]"
    assert request["headers"]["x-api-key"] == "[Filtered]"
    assert "cookie" not in request["headers"]  # cookies only with send_default_pii
    assert "s3cr3t" not in json.dumps(event) and "Bearer secret" not in json.dumps(event)
    assert "env" not in request and "cookies" not in request  # no PII by default
    crumb = _crumbs(event)[0]
    assert crumb["category"] == "http.server"
    assert crumb["data"]["status_code"] == 500
    assert crumb["data"]["url"] == f"{running.url}/boom/3"


def test_concurrent_requests_never_see_each_others_scope(
    served: tuple[str, Running], events: CapturedEvents
) -> None:
    """Forty concurrent failing requests each carry only their own tag, user, breadcrumb and request."""
    framework, running = served

    async def hammer() -> list[int]:
        async with httpx.AsyncClient(base_url=running.url, timeout=20) as client:
            responses = await asyncio.gather(*(client.get(f"/isolate?who=w{i}") for i in range(40)))
        return [r.status_code for r in responses]

    assert set(asyncio.run(hammer())) == {500}
    captured = settle(events, 40)
    assert len(captured) == 40
    seen = set()
    for event in captured:
        (exc,) = [v for v in event["exception"]["values"] if v["type"] == "ValueError"]
        who = exc["value"].removeprefix("isolate ")
        seen.add(who)
        assert event["tags"]["who"] == who
        assert event["user"]["id"] == who
        assert [c["message"] for c in _crumbs(event) if c.get("category") == "test"] == [f"crumb {who}"]
        assert event["request"]["query_string"] == f"who={who}"
    assert seen == {f"w{i}" for i in range(40)}


def test_http_errors_below_500_are_not_reported(served: tuple[str, Running], events: CapturedEvents) -> None:
    """A framework 404 exception is an answer, not an error: no event."""
    _, running = served
    assert httpx.get(f"{running.url}/notfound").status_code == 404
    assert httpx.get(f"{running.url}/boom/9").status_code == 500  # a marker that does arrive
    captured = settle(events, 1)
    assert [e["exception"]["values"][-1]["value"] for e in captured] == ["boom 9"]


def test_a_503_response_is_reported_once_when_configured(
    served: tuple[str, Running], events: CapturedEvents
) -> None:
    """With failed_status_codes=500-599 a plain 503 response becomes exactly one error event."""
    framework, running = served
    assert httpx.get(f"{running.url}/unavailable").status_code == 503
    (event,) = settle(events, 1)
    assert event["level"] == "error"
    assert event["request"]["url"] == f"{running.url}/unavailable"
    if framework == "django":
        # Django logs 5xx responses at ERROR itself; the logging integration reports that record,
        # and the middleware does not add a second event for the same request.
        assert event["logger"] == "django.request"
    else:
        assert event["logentry"]["message"] == "GET /unavailable returned 503"


def test_error_reported_by_the_view_gets_request_data(
    served: tuple[str, Running], events: CapturedEvents
) -> None:
    """capture_exception() inside a view is sent once, as handled, with the request attached."""
    _, running = served
    assert httpx.get(f"{running.url}/handled").status_code == 200
    (event,) = settle(events, 1)
    assert event["exception"]["values"][-1]["type"] == "KeyError"
    assert event["exception"]["values"][-1]["mechanism"]["handled"] is True
    assert event["request"]["url"] == f"{running.url}/handled"


def test_release_health_counts_requests_by_outcome(
    served: tuple[str, Running], events: CapturedEvents
) -> None:
    """Each request is one session: ok and 404 exited, a handled error errored, a crash crashed."""
    _, running = served
    for path in ("/ok", "/ok", "/notfound", "/handled", "/boom/1"):
        httpx.get(running.url + path)
    totals = wait_sessions(events, 5)
    assert totals == {"exited": 3, "errored": 1, "crashed": 1}
    attrs = events.sessions[0].aggregates[0]["attrs"]
    assert attrs == {"release": "1.0", "environment": "test"}


def test_body_the_app_reads_is_attached_scrubbed(served: tuple[str, Running], events: CapturedEvents) -> None:
    """The JSON body the view read is on its event, with secret fields filtered."""
    _, running = served
    payload = {"password": "hunter2", "name": "ann"}
    ok = httpx.post(f"{running.url}/echo", json=payload)
    assert ok.status_code == 200 and json.loads(ok.content) == payload  # the app got its body unchanged
    failed = httpx.post(f"{running.url}/echo", json=payload, headers={"x-fail": "1"})
    assert failed.status_code == 500
    (event,) = settle(events, 1)
    assert event["request"]["data"] == {"password": "[Filtered]", "name": "ann"}


def test_body_over_the_limit_is_not_attached(served: tuple[str, Running], events: CapturedEvents) -> None:
    """A body larger than max_request_body_size is not copied, only its size is noted."""
    _, running = served
    body = b"x" * 5000
    ok = httpx.post(f"{running.url}/echo", content=body, headers={"content-type": "text/plain"})
    assert ok.content == body
    httpx.post(f"{running.url}/echo", content=body, headers={"content-type": "text/plain", "x-fail": "1"})
    (event,) = settle(events, 1)
    assert "xxxx" not in json.dumps(event["request"])
    assert "over max_request_body_size" in event["request"]["data"]


def test_client_address_and_cookies_only_with_pii(served: tuple[str, Running]) -> None:
    """With send_default_pii the client IP and cookies are sent; secret cookie names stay filtered."""
    _, running = served
    with tripwire.testing.capture_events(send_default_pii=True, include_local_variables=False) as captured:
        httpx.get(f"{running.url}/boom/4", headers={"Cookie": "theme=dark; sessionid=abc"})
        captured.wait_for(1)
    request = captured[0]["request"]
    assert request["env"] == {"REMOTE_ADDR": "127.0.0.1"}
    assert request["cookies"] == {"theme": "dark", "sessionid": "[Filtered]"}
