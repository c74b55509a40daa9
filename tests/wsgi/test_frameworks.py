"""Flask, Falcon, Bottle, Pyramid and Django (WSGI) for real, under waitress: a failing view's event
(type, route template, user and tag set in the view, request data), reported once, the framework's
own 500 response unchanged, isolation under concurrency, release health."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tripwire.reporters.capture import CapturedEvents

from ..asgi.conftest import settle, wait_sessions
from . import framework_apps
from .servers import request, waitress_server


@pytest.fixture(params=framework_apps.FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _bare_500(framework: str) -> tuple[int, bytes]:
    """What the framework answers for the failing route without tripwire."""
    made, _ = framework_apps.make(framework)
    app = made if framework != "flask" else made.wsgi_app.app
    with waitress_server(app) as address:
        reply = request(address, "GET", "/orders/7")
    return reply.status, reply.body.replace(address.encode(), b"ADDRESS")  # Bottle's page shows the URL


def test_a_failing_view_is_reported_once_with_its_route_user_and_tag(
    framework: str, events: CapturedEvents
) -> None:
    _, app = framework_apps.make(framework)
    with waitress_server(app) as address:
        ok = request(address, "GET", "/ok")
        reply = request(address, "GET", "/orders/7?token=abc&page=2", headers={"Cookie": "sessionid=s3cr3t"})
    assert (ok.status, ok.body) == (200, b"ok")
    assert reply.status == 500
    (event,) = settle(events, 1)
    exc = event["exception"]["values"][-1]  # the last is the one raised (Pyramid chains a 404 lookup)
    assert (exc["type"], exc["value"]) == ("KeyError", "'order 7'")
    assert event["transaction"] == framework_apps.ROUTES[framework]
    assert event["user"]["id"] == "user-7"
    assert event["tags"]["order"] == "7"
    req = event["request"]
    assert req["method"] == "GET" and req["url"].endswith("/orders/7")
    assert "abc" not in req["query_string"] and "page=2" in req["query_string"]
    assert "s3cr3t" not in str(req)


def test_the_frameworks_own_500_response_is_unchanged(framework: str, events: CapturedEvents) -> None:
    bare = _bare_500(framework)
    _, app = framework_apps.make(framework)
    with waitress_server(app) as address:
        reply = request(address, "GET", "/orders/7")
    assert (reply.status, reply.body.replace(address.encode(), b"ADDRESS")) == bare


def test_concurrent_failing_requests_each_carry_only_their_own_user_and_tag(
    framework: str, events: CapturedEvents
) -> None:
    count = 24
    _, app = framework_apps.make(framework)
    with waitress_server(app, threads=6) as address, ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: request(address, "GET", f"/orders/{i}").status, range(count)))
    assert statuses == [500] * count
    reported = settle(events, count)
    assert len(reported) == count
    for event in reported:
        oid = event["tags"]["order"]
        assert event["user"]["id"] == f"user-{oid}"
        assert event["exception"]["values"][-1]["value"] == f"'order {oid}'"
    assert sorted(int(e["tags"]["order"]) for e in reported) == list(range(count))


def test_release_health_counts_the_failing_request_as_crashed(framework: str, events: CapturedEvents) -> None:
    _, app = framework_apps.make(framework)
    with waitress_server(app) as address:
        request(address, "GET", "/ok")
        request(address, "GET", "/orders/1")
    totals = wait_sessions(events, 2)
    assert totals == {"exited": 1, "crashed": 1}
