"""Tracing of the demo shop with the official sentry-sdk (optional: without it the demo is untraced).

sentry-sdk is started with no integrations at all: it must not patch Starlette, which the
collector in the same process uses too (the collector's own requests would be traced and sent to
itself). A small pure ASGI middleware opens one transaction per request, named by the route
template, and the shop adds a few child spans (database queries, a cache lookup, a payment call),
so the Performance page, a transaction summary and a trace have data within seconds. Each
request's trace id goes into tripwire's ``trace`` context, so the errors link to their traces.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

sentry_sdk: Any
try:
    import sentry_sdk
except ImportError:  # pragma: no cover - sentry-sdk comes with the dev extra
    sentry_sdk = None


def available() -> bool:
    return sentry_sdk is not None


def init(dsn: str, release: str, environment: str) -> bool:
    """Start sentry-sdk for transactions only; False if it is not installed."""
    if sentry_sdk is None:
        return False
    sentry_sdk.init(
        dsn=dsn,
        release=release,
        environment=environment,
        traces_sample_rate=1.0,
        default_integrations=False,
        auto_enabling_integrations=False,
        send_client_reports=False,
        # Errors are tripwire's job here: sentry-sdk only sends transactions.
        before_send=lambda event, hint: None,
    )
    return True


def close() -> None:
    if sentry_sdk is not None and sentry_sdk.get_client().is_active():
        sentry_sdk.flush(5)
        sentry_sdk.get_client().close()


@contextlib.contextmanager
def span(op: str, description: str, pause: float = 0.0) -> Iterator[None]:
    """A child span of the current transaction (a no-op without sentry-sdk)."""
    if sentry_sdk is None:
        if pause:
            time.sleep(pause)
        yield
        return
    with sentry_sdk.start_span(op=op, name=description):
        if pause:
            time.sleep(pause)
        yield


class TracingMiddleware:
    """One sentry-sdk transaction per HTTP request, named by its route template."""

    def __init__(self, app: Any, routes: list[Any]) -> None:
        self.app = app
        self.routes = routes

    def _name(self, scope: Any) -> str:
        from starlette.routing import Match

        for route in self.routes:
            match, _child = route.matches(scope)
            if match == Match.FULL:
                return str(route.path)
        return str(scope.get("path", "/"))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or sentry_sdk is None:
            await self.app(scope, receive, send)
            return
        import tripwire

        status = [500]

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        with (
            sentry_sdk.isolation_scope(),
            sentry_sdk.start_transaction(
                op="http.server", name=f"{scope['method']} {self._name(scope)}", source="route"
            ) as transaction,
        ):
            tripwire.set_context("trace", {"trace_id": transaction.trace_id, "span_id": transaction.span_id})
            try:
                await self.app(scope, receive, noting)
            finally:
                transaction.set_http_status(status[0])
