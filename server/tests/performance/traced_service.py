"""Run by the tests in a subprocess: a Starlette app under uvicorn traced by the official sentry-sdk.

Usage: python traced_service.py DSN PORT DURATIONS_FILE [DOWNSTREAM_URL]

``/fast``, ``/medium``, ``/slow`` sleep for known times; ``/inventory`` runs one statement per
item (an N+1 query);
``/checkout`` calls ``DOWNSTREAM_URL/inventory`` (the trace continues in the other service);
``/boom`` raises. Every transaction's real duration is appended to DURATIONS_FILE (one JSON line
per transaction: name and milliseconds), from ``before_send_transaction``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

import httpx
import sentry_sdk
import uvicorn
from sentry_sdk.integrations.httpx import HttpxIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DSN, PORT, DURATIONS = sys.argv[1], int(sys.argv[2]), sys.argv[3]
DOWNSTREAM = sys.argv[4] if len(sys.argv) > 4 else None
_lock = threading.Lock()


def record(event: Any, hint: Any) -> Any:
    duration = (float(event["timestamp"]) - float(event["start_timestamp"])) * 1000
    with _lock, open(DURATIONS, "a") as f:
        f.write(json.dumps({"transaction": event["transaction"], "ms": duration}) + "\n")
    return event


def _ts(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    import datetime as dt

    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def record_ts(event: Any, hint: Any) -> Any:
    event_ = dict(event)
    event_["timestamp"] = _ts(event["timestamp"])
    event_["start_timestamp"] = _ts(event["start_timestamp"])
    record(event_, hint)
    return event


sentry_sdk.init(
    dsn=DSN,
    # The two integrations this service uses, named: the auto-enabling ones would import every
    # installed framework (1.5 s of CPU per start here, several under coverage).
    auto_enabling_integrations=False,
    integrations=[StarletteIntegration(), HttpxIntegration()],
    traces_sample_rate=1.0,
    release="shop@2.0.0",
    environment="test",
    before_send_transaction=record_ts,
    send_client_reports=False,
)


#: Route -> how long it sleeps (seconds).
SLEEPS = {"/fast": 0.02, "/medium": 0.08, "/slow": 0.2}


async def sleeper(request: Request) -> JSONResponse:
    await asyncio.sleep(SLEEPS[request.url.path])
    return JSONResponse({"ok": True})


async def inventory(request: Request) -> JSONResponse:
    items = []
    for item_id in range(1, 8):
        with sentry_sdk.start_span(op="db.sql.query", name=f"SELECT * FROM items WHERE id = {item_id}"):
            await asyncio.sleep(0.002)
            items.append(item_id)
    return JSONResponse({"items": items})


async def checkout(request: Request) -> JSONResponse:
    assert DOWNSTREAM is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{DOWNSTREAM}/inventory")
    with sentry_sdk.start_span(op="cache.get", name="cart:42"):
        await asyncio.sleep(0.001)
    return JSONResponse({"items": response.json()["items"]})


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("payment gateway exploded")


app = Starlette(
    routes=[
        *(Route(path, sleeper) for path in SLEEPS),
        Route("/inventory", inventory),
        Route("/checkout", checkout),
        Route("/boom", boom),
    ]
)

if __name__ == "__main__":
    try:
        uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
    finally:
        sentry_sdk.flush(10)
