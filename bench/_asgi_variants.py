"""The Starlette app of the ASGI benchmarks, set up with each SDK (one variant per process).

Variants:
    bare      Starlette, no SDK
    tripwire  tripwire.init(dsn=<sink>) + TripwireMiddleware(app)
    tripwire-every-event  the same with repeat_limit=None: every failing request is built and sent
    tripwire-nolocals  the same with include_local_variables=False (a what-if)
    tripwire-tracked  the same with track_response_status=True (every response's status watched)
    passthrough  an empty pure-ASGI middleware, no SDK (the floor of any middleware layer)
    sentry    sentry_sdk.init(dsn=<sink>) with its auto-enabled Starlette integration, tracing off
    bugsnag   bugsnag.configure(endpoints=<sink>) + bugsnag.asgi.BugsnagMiddleware(app)

Every SDK gets the same release, reports to the loopback sink at ``sink_url``, and is otherwise left
at its defaults.
"""

from __future__ import annotations

from typing import Any

VARIANTS = ("bare", "tripwire", "tripwire-every-event", "sentry", "bugsnag")
#: What-if variants, run with --variants: tripwire without frame locals.
EXTRA_VARIANTS = ("passthrough", "tripwire-nolocals", "tripwire-nointegrations", "tripwire-tracked")
RELEASE = "bench@1.0.0"


def http_scope(path: str) -> dict[str, Any]:
    """A GET request's ASGI scope, as a server would build it (for in-process calls)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "path": path,
        "raw_path": path.encode(),
    }


async def receive() -> dict[str, Any]:
    """An empty request body."""
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    """Discard the response."""


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def boom(request: Request) -> PlainTextResponse:
        raise ValueError("boom")

    return Starlette(routes=[Route("/ok", ok), Route("/boom", boom)])


class _Passthrough:
    """An empty pure-ASGI middleware: the floor any middleware layer costs (a reference row)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def build(variant: str, sink_url: str) -> Any:
    """The ASGI app for ``variant``, with its SDK initialised to report to ``sink_url``."""
    port = sink_url.rsplit(":", 1)[1]
    if variant == "sentry":
        import sentry_sdk

        # Before the app is built: the integration patches Starlette itself.
        sentry_sdk.init(dsn=f"http://publickey@127.0.0.1:{port}/1", release=RELEASE)
    app = starlette_app()
    if variant == "bare":
        return app
    if variant == "passthrough":
        return _Passthrough(app)
    if variant.startswith("tripwire"):
        import tripwire
        from tripwire.asgi import TripwireMiddleware

        extra: dict[str, Any] = {}
        if variant == "tripwire-nolocals":
            extra["include_local_variables"] = False
        elif variant == "tripwire-every-event":
            extra["repeat_limit"] = None
        elif variant == "tripwire-nointegrations":
            extra["default_integrations"] = False
        tripwire.init(f"http://publickey@127.0.0.1:{port}/1", release=RELEASE, **extra)
        return TripwireMiddleware(app, track_response_status=variant == "tripwire-tracked")
    if variant == "sentry":
        return app
    if variant == "bugsnag":
        import bugsnag
        from bugsnag.asgi import BugsnagMiddleware

        bugsnag.configure(
            api_key="0" * 32,
            endpoint=f"{sink_url}/notify",
            session_endpoint=f"{sink_url}/sessions",
            app_version=RELEASE,
        )
        return BugsnagMiddleware(app)
    raise ValueError(variant)


def flush(variant: str) -> None:
    """Deliver what the SDK still holds (so the sink's counts are complete)."""
    if variant.startswith("tripwire"):
        import tripwire

        tripwire.flush(10)
    elif variant == "sentry":
        import sentry_sdk

        sentry_sdk.flush(10)
    elif variant == "bugsnag":
        import threading
        import time

        # bugsnag delivers from one thread per event: wait for them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            t is not threading.current_thread() and not t.daemon and t.is_alive()
            for t in threading.enumerate()
        ):
            time.sleep(0.05)


def reported(sink: Any) -> tuple[int, int]:
    """(events at the sink, occurrences counted instead of sent) for every SDK's traffic so far.

    The second number is what tripwire's repeat limit coalesced, from its client reports: with it,
    every failing request is accounted for, as an event or as a count.
    """
    events = len(sink.events) + len(sink.bugsnag_events)
    counted = sum(
        d.get("quantity", 0)
        for report in sink.items("client_report")
        for d in report.get("discarded_events", ())
        if d.get("reason") == "repeat_limit"
    )
    return events, counted
