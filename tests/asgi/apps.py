"""The same small application written in each framework, wrapped in TripwireMiddleware.

Routes (Django has no websocket):
    GET  /ok              200 "ok"
    GET  /boom/<n>        raises ValueError("boom <n>")
    GET  /isolate?who=X   sets tag, user and breadcrumb from X, yields to other requests, raises
    GET  /handled         reports a caught exception itself, answers 200
    GET  /notfound        raises the framework's HTTP 404 exception
    GET  /unavailable     returns a plain 503 response (no exception)
    POST /echo            reads the body the framework's way; raises if header x-fail is set
    WS   /ws              accepts, receives one text message, raises ValueError("ws <text>")
"""

# No "from __future__ import annotations": FastAPI and Litestar read these annotations at runtime.

import asyncio
from typing import Any

import tripwire
from tripwire.asgi import TripwireMiddleware

FRAMEWORKS = ("starlette", "fastapi", "litestar", "quart", "django")
WEBSOCKET_FRAMEWORKS = ("starlette", "fastapi", "litestar", "quart")

#: The route template each framework reports as the transaction of /boom/<n>.
BOOM_ROUTE = {
    "starlette": "/boom/{n}",
    "fastapi": "/boom/{n}",
    "litestar": "/boom/{n}",  # Litestar drops the type from its template
    "quart": "/boom/<int:n>",
    "django": "/boom/<int:n>",
}
WS_ROUTE = {"starlette": "/ws", "fastapi": "/ws", "litestar": "/ws", "quart": "/ws"}

MIDDLEWARE_OPTIONS: dict[str, Any] = {"failed_status_codes": range(500, 600), "max_request_body_size": 1000}


async def isolate(who: str) -> None:
    tripwire.set_tag("who", who)
    tripwire.set_user({"id": who})
    tripwire.add_breadcrumb(f"crumb {who}", category="test")
    await asyncio.sleep(0.02)  # let the other requests run in between
    raise ValueError(f"isolate {who}")


def handled() -> None:
    try:
        raise KeyError("handled inside the view")
    except KeyError:
        tripwire.capture_exception()


def starlette_app(fastapi: bool = False) -> Any:
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.websockets import WebSocket

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def boom(request: Request) -> Response:
        raise ValueError(f"boom {request.path_params['n']}")

    async def isolate_view(request: Request) -> Response:
        await isolate(request.query_params["who"])
        return PlainTextResponse("unreachable")

    async def handled_view(request: Request) -> Response:
        handled()
        return PlainTextResponse("handled")

    async def notfound(request: Request) -> Response:
        raise HTTPException(404)

    async def unavailable(request: Request) -> Response:
        return PlainTextResponse("down", status_code=503)

    async def echo(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("x-fail"):
            raise ValueError("echo failed")
        return Response(body)

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        raise ValueError(f"ws {text}")

    if fastapi:
        from fastapi import FastAPI
        from fastapi import Request as FRequest

        fapp = FastAPI()

        @fapp.get("/ok")
        async def f_ok() -> Response:
            return PlainTextResponse("ok")

        @fapp.get("/boom/{n}")
        async def f_boom(n: int) -> None:
            raise ValueError(f"boom {n}")

        @fapp.get("/isolate")
        async def f_isolate(who: str) -> None:
            await isolate(who)

        @fapp.get("/handled")
        async def f_handled() -> Response:
            handled()
            return PlainTextResponse("handled")

        @fapp.get("/notfound")
        async def f_notfound() -> None:
            from fastapi import HTTPException as FastAPIHTTPException

            raise FastAPIHTTPException(404)

        @fapp.get("/unavailable")
        async def f_unavailable() -> Response:
            return PlainTextResponse("down", status_code=503)

        @fapp.post("/echo")
        async def f_echo(request: FRequest) -> Response:
            return await echo(request)

        fapp.add_api_websocket_route("/ws", ws)
        return TripwireMiddleware(fapp, **MIDDLEWARE_OPTIONS)

    from starlette.applications import Starlette
    from starlette.routing import Route, WebSocketRoute

    app = Starlette(
        routes=[
            Route("/ok", ok),
            Route("/boom/{n}", boom),
            Route("/isolate", isolate_view),
            Route("/handled", handled_view),
            Route("/notfound", notfound),
            Route("/unavailable", unavailable),
            Route("/echo", echo, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ]
    )
    return TripwireMiddleware(app, **MIDDLEWARE_OPTIONS)


def litestar_app() -> Any:
    from litestar import Litestar, Request, Response, get, post, websocket
    from litestar.connection import WebSocket
    from litestar.exceptions import NotFoundException

    @get("/ok")
    async def ok() -> str:
        return "ok"

    @get("/boom/{n:int}")
    async def boom(n: int) -> None:
        raise ValueError(f"boom {n}")

    @get("/isolate")
    async def isolate_view(who: str) -> None:
        await isolate(who)

    @get("/handled")
    async def handled_view() -> str:
        handled()
        return "handled"

    @get("/notfound")
    async def notfound() -> None:
        raise NotFoundException()

    @get("/unavailable")
    async def unavailable() -> Response[str]:
        return Response("down", status_code=503)

    @post("/echo", status_code=200)
    async def echo(request: Request[Any, Any, Any]) -> bytes:
        body = await request.body()
        if request.headers.get("x-fail"):
            raise ValueError("echo failed")
        return body

    @websocket("/ws")
    async def ws(socket: WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        text = await socket.receive_text()
        raise ValueError(f"ws {text}")

    app = Litestar(
        route_handlers=[ok, boom, isolate_view, handled_view, notfound, unavailable, echo, ws],
        logging_config=None,
    )
    return TripwireMiddleware(app, **MIDDLEWARE_OPTIONS)


def quart_app() -> Any:
    from quart import Quart, abort, request, websocket

    app = Quart("tripwire_test")

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    @app.get("/boom/<int:n>")
    async def boom(n: int) -> str:
        raise ValueError(f"boom {n}")

    @app.get("/isolate")
    async def isolate_view() -> str:
        await isolate(request.args["who"])
        return "unreachable"

    @app.get("/handled")
    async def handled_view() -> str:
        handled()
        return "handled"

    @app.get("/notfound")
    async def notfound() -> str:
        abort(404)

    @app.get("/unavailable")
    async def unavailable() -> tuple[str, int]:
        return "down", 503

    @app.post("/echo")
    async def echo() -> bytes:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)  # as_text=False; Quart's annotation does not narrow on it
        if request.headers.get("x-fail"):
            raise ValueError("echo failed")
        return body

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        text = await websocket.receive()
        raise ValueError(f"ws {text!s}")  # the tests send text frames: str

    return TripwireMiddleware(app, **MIDDLEWARE_OPTIONS)


def django_app() -> Any:
    from . import django_project

    return TripwireMiddleware(django_project.application(), **MIDDLEWARE_OPTIONS)


def make_app(framework: str) -> Any:
    if framework == "starlette":
        return starlette_app()
    if framework == "fastapi":
        return starlette_app(fastapi=True)
    if framework == "litestar":
        return litestar_app()
    if framework == "quart":
        return quart_app()
    if framework == "django":
        return django_app()
    raise ValueError(framework)
