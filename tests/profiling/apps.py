"""A Starlette app with a deliberately slow pure-Python function, for the profiling tests and bench."""

from __future__ import annotations

import asyncio
import time
from typing import Any


def slow_checksum(seconds: float) -> int:
    """Pure-Python CPU work for ``seconds``: the function a profile must find."""
    deadline = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < deadline:
        for i in range(2_000):
            total = (total * 31 + i) % 1_000_003
    return total


def starlette_app(wrap: Any = None) -> Any:
    """``/slow?ms=N`` runs :func:`slow_checksum` on the event loop's thread; ``/io?ms=N`` awaits a sleep.

    ``wrap`` (tripwire's middleware, or nothing for sentry-sdk, which patches Starlette itself) is
    applied to the app.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def slow(request: Request) -> PlainTextResponse:
        ms = int(request.query_params.get("ms", "300"))
        return PlainTextResponse(str(slow_checksum(ms / 1000)))

    async def io(request: Request) -> PlainTextResponse:
        ms = int(request.query_params.get("ms", "20"))
        await asyncio.sleep(ms / 1000)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/slow", slow), Route("/io", io)])
    return wrap(app) if wrap is not None else app
