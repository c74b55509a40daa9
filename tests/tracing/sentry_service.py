"""A small Starlette service instrumented by the official sentry-sdk (tracing at 100%), run as its own
process by the chain tests: ``python -m tests.tracing.sentry_service FD DSN``.

``GET /data`` answers "sentry"; ``GET /call?target=URL`` calls URL with httpx and answers its body.
"""

from __future__ import annotations

import sys

import httpx
import sentry_sdk
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def data(request: Request) -> PlainTextResponse:
    return PlainTextResponse("sentry")


async def call(request: Request) -> PlainTextResponse:
    async with httpx.AsyncClient() as http:
        response = await http.get(request.query_params["target"])
    return PlainTextResponse(response.text)


def main() -> None:
    fd, dsn = int(sys.argv[1]), sys.argv[2]
    from sentry_sdk.integrations.httpx import HttpxIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    sentry_sdk.init(
        dsn=dsn,
        traces_sample_rate=1.0,
        release="sentry-side",
        # The two integrations this service uses, named: the auto-enabling ones would import every
        # installed framework (1.5 s of CPU per start here, several under coverage).
        auto_enabling_integrations=False,
        integrations=[StarletteIntegration(), HttpxIntegration()],
    )
    app = Starlette(routes=[Route("/data", data), Route("/call", call)])
    uvicorn.run(app, fd=fd, log_level="critical", lifespan="off")


if __name__ == "__main__":
    main()
