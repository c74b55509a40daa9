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


def fixed_checksum(rounds: int) -> int:
    """The same pure-Python work as :func:`slow_checksum`, a fixed amount of it (for CPU benchmarks)."""
    total = 0
    for _ in range(rounds):
        for i in range(2_000):
            total = (total * 31 + i) % 1_000_003
    return total


def starlette_app(wrap: Any = None) -> Any:
    """``/slow?ms=N`` runs :func:`slow_checksum` on the event loop's thread; ``/io?ms=N`` awaits a sleep;
    ``/work?rounds=N`` runs :func:`fixed_checksum`.

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

    async def work(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(fixed_checksum(int(request.query_params.get("rounds", "100")))))

    app = Starlette(routes=[Route("/slow", slow), Route("/io", io), Route("/work", work)])
    return wrap(app) if wrap is not None else app
