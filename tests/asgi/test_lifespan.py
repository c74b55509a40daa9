"""Lifespan: startup and shutdown errors are their own events, and the SDK flushes on shutdown."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

import tripwire
from tripwire.asgi import TripwireMiddleware
from tripwire.reporters.capture import CapturedEvents, CaptureReporter

from .apps import django_app
from .conftest import settle
from .servers import serve


def _failing_app(framework: str, phase: str) -> Any:
    def fail() -> None:
        raise RuntimeError(f"{phase} broke")

    if framework == "starlette":
        from starlette.applications import Starlette

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            if phase == "startup":
                fail()
            yield
            fail()

        return TripwireMiddleware(Starlette(lifespan=lifespan))
    if framework == "quart":
        from quart import Quart

        quart = Quart("lifespan_test")
        if phase == "startup":
            quart.before_serving(fail)
        else:
            quart.after_serving(fail)
        return TripwireMiddleware(quart)
    if framework == "litestar":
        from litestar import Litestar

        hooks: dict[str, Any] = {"on_startup" if phase == "startup" else "on_shutdown": [fail]}
        return TripwireMiddleware(Litestar(route_handlers=[], logging_config=None, **hooks))
    raise ValueError(framework)


@pytest.mark.parametrize("framework", ["starlette", "quart", "litestar"])
def test_startup_error_is_reported_without_request_data(
    framework: str, server_kind: str, events: CapturedEvents
) -> None:
    """A failing startup becomes one unhandled event named lifespan.startup, with no request."""
    with serve(_failing_app(framework, "startup"), server_kind, lifespan="on") as running:
        running.thread.join(10)
    _assert_one_lifespan_event(events, framework, "startup")


def _assert_one_lifespan_event(events: CapturedEvents, framework: str, phase: str) -> None:
    captured = settle(events, 1)
    assert len(captured) == 1
    event = captured[0]
    values = event["exception"]["values"]
    (error,) = [v for v in values if v["type"] == "RuntimeError"]
    assert error["value"] == f"{phase} broke"
    # Litestar wraps it in its task group's ExceptionGroup; Quart logs it itself (the logging
    # integration reports it first, as handled): either way one event, named after the phase.
    if framework != "quart":
        assert values[-1]["mechanism"]["handled"] is False
    assert event["transaction"] == f"lifespan.{phase}"
    assert "request" not in event


@pytest.mark.parametrize("framework", ["starlette", "quart", "litestar"])
def test_shutdown_error_is_reported(framework: str, server_kind: str, events: CapturedEvents) -> None:
    """A failing shutdown hook becomes one event named lifespan.shutdown."""
    with serve(_failing_app(framework, "shutdown"), server_kind, lifespan="on") as running:
        assert running.thread.is_alive()
    _assert_one_lifespan_event(events, framework, "shutdown")


class _SlowReporter(CaptureReporter):
    """Takes a while per event, like a remote server would."""

    def send_event(self, event: dict[str, Any]) -> None:
        time.sleep(0.5)
        super().send_event(event)


def test_lifespan_shutdown_waits_until_events_are_delivered(server_kind: str) -> None:
    """When the server shuts down, the middleware flushes: the event captured just before is delivered."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    captured = CapturedEvents()
    tripwire.init(reporters=[_SlowReporter(captured)], include_local_variables=False)

    async def boom(request: Any) -> Any:
        raise ValueError("just before shutdown")

    app = TripwireMiddleware(Starlette(routes=[Route("/", boom)]))
    with serve(app, server_kind, lifespan="on") as running:
        httpx.get(running.url)
    # The server has finished its shutdown here; nobody called flush() on the client.
    assert [e["exception"]["values"][-1]["value"] for e in captured] == ["just before shutdown"]


def test_django_lifespan_refusal_is_not_reported(server_kind: str, events: CapturedEvents) -> None:
    """Django's handler refuses lifespan scopes with a ValueError before speaking lifespan: no event."""
    with serve(django_app(), server_kind) as running:
        assert httpx.get(running.url + "/ok").text == "ok"
    tripwire.flush(5)
    assert list(events) == []
