"""Run by the tests in a subprocess: a Starlette app under uvicorn, profiled by a Sentry-protocol SDK.

Usage: python profiled_service.py CLIENT DSN PORT

CLIENT says who profiles it: ``sentry`` (the official sentry-sdk, transaction profiles:
``profiles_sample_rate=1.0``) or ``sentry-continuous`` (sentry-sdk's continuous profiler:
``profile_session_sample_rate=1.0``, ``profile_lifecycle="trace"``, ``profile_chunk`` items);
``tripwire`` and ``tripwire-continuous`` are the same with tripwire's own SDK.
``/crunch`` spends its time in :func:`crunch_numbers`, a deliberately slow pure-Python function;
``/hostile`` in a function whose name is markup; ``/wait`` only awaits (an idle request).
"""

from __future__ import annotations

import asyncio
import sys
import types

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CLIENT, DSN, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
#: The name the hostile function reports in its frames (co_qualname): markup and a script.
HOSTILE_NAME = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
RELEASE = "shop@3.1.0"


#: The exit flush's deadline. The SDKs' default (2 s) suits an app; here the test stops the service
#: right after its requests, and on a loaded machine building and sending their profiles can take longer.
SHUTDOWN_TIMEOUT = 20.0


def init_sentry(continuous: bool) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.starlette import StarletteIntegration

    options: dict[str, object] = {
        "dsn": DSN,
        # The integration the Starlette app needs, without importing every other installed
        # framework's (which takes seconds on a busy machine).
        "auto_enabling_integrations": False,
        "integrations": [StarletteIntegration()],
        "traces_sample_rate": 1.0,
        "release": RELEASE,
        "environment": "test",
        "send_client_reports": False,
        "shutdown_timeout": SHUTDOWN_TIMEOUT,
    }
    if continuous:
        options.update(profile_session_sample_rate=1.0, profile_lifecycle="trace")
    else:
        options["profiles_sample_rate"] = 1.0
    sentry_sdk.init(**options)  # type: ignore[arg-type]


def crunch_numbers(rounds: int) -> int:
    """Deliberately slow pure-Python arithmetic: where the time of /crunch goes."""
    total = 0
    for i in range(rounds):
        total = (total * 31 + i * i) % 1_000_003
    return total


def _renamed(fn: types.FunctionType, name: str) -> types.FunctionType:
    # Profilers name a frame by its code's qualified name (Python 3.11+) or its name.
    if sys.version_info >= (3, 11):
        code = fn.__code__.replace(co_name=name, co_qualname=name)
    else:
        code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name)


hostile = _renamed(crunch_numbers, HOSTILE_NAME)  # type: ignore[arg-type]


async def crunch(request: Request) -> JSONResponse:
    return JSONResponse({"result": crunch_numbers(int(request.query_params.get("rounds", "600000")))})


async def hostile_route(request: Request) -> JSONResponse:
    # As long as /crunch: a profiler needs a few samples of it even on a loaded machine (sentry-sdk
    # drops a profile of fewer than two).
    return JSONResponse({"result": hostile(600_000)})


async def wait(request: Request) -> JSONResponse:
    await asyncio.sleep(0.1)
    return JSONResponse({"ok": True})


async def fast(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def init_tripwire(continuous: bool) -> None:
    """tripwire's own profiler, with sentry-sdk's option names (ready for the SDK half of issue 19)."""
    import tripwire

    options: dict[str, object] = {
        "traces_sample_rate": 1.0,
        "release": RELEASE,
        "environment": "test",
        "shutdown_timeout": SHUTDOWN_TIMEOUT,
    }
    if continuous:
        options.update(profile_session_sample_rate=1.0, profile_lifecycle="trace")
    else:
        options["profiles_sample_rate"] = 1.0
    tripwire.init(DSN, **options)


if CLIENT in ("sentry", "sentry-continuous"):
    init_sentry(CLIENT == "sentry-continuous")
elif CLIENT in ("tripwire", "tripwire-continuous"):
    init_tripwire(CLIENT == "tripwire-continuous")
else:
    raise SystemExit(f"unknown client {CLIENT!r}")

app = Starlette(
    routes=[
        Route("/crunch", crunch),
        Route("/hostile", hostile_route),
        Route("/wait", wait),
        Route("/fast", fast),
    ]
)
if CLIENT.startswith("tripwire"):
    import tripwire.asgi

    app = tripwire.asgi.TripwireMiddleware(app)  # type: ignore[assignment]

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
