"""Starlette and FastAPI apps that do the I/O the tracing tests look for: one outgoing HTTP call to a
loopback server and two sqlite3 queries per request, plus routes that fail."""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.request
from typing import Any

from tripwire.asgi import TripwireMiddleware


def _work(upstream_url: str, tag: str) -> str:
    with urllib.request.urlopen(f"{upstream_url}/data?tag={tag}", timeout=5) as response:
        body: str = response.read().decode()
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE items (tag TEXT)")
        conn.execute("INSERT INTO items VALUES (?)", (tag,))
    finally:
        conn.close()
    return body


def starlette_app(upstream_url: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Request) -> PlainTextResponse:
        tag = request.path_params["tag"]
        body = await asyncio.to_thread(_work, upstream_url, tag)
        return PlainTextResponse(body)

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    async def data(request: Request) -> PlainTextResponse:
        return PlainTextResponse("tripwire")

    app = Starlette(routes=[Route("/items/{tag}", item), Route("/boom", boom), Route("/data", data)])
    return TripwireMiddleware(app)


def fastapi_app(upstream_url: str) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{tag}")
    def item(tag: str) -> dict[str, str]:  # a sync view: FastAPI runs it in its thread pool
        return {"body": _work(upstream_url, tag)}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return TripwireMiddleware(app)


APPS = {"starlette": starlette_app, "fastapi": fastapi_app}
