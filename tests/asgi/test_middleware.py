"""TripwireMiddleware's contract with the application, on real servers over 127.0.0.1: the same
exception object re-raised, the body left alone, ASGI 2, nesting, noise, executors, session switches."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import pytest

import tripwire
from tripwire.asgi import TripwireMiddleware
from tripwire.reporters.capture import CapturedEvents, CaptureReporter

from .conftest import settle, wait_sessions
from .servers import serve


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


def test_the_same_exception_object_is_reraised_with_its_chain_untouched(
    server_kind: str, events: CapturedEvents
) -> None:
    """What leaves the middleware is the app's own exception object, its chain attributes unchanged."""
    raised: list[BaseException] = []
    arrived: list[BaseException] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise RuntimeError("outer") from inner
        except RuntimeError as exc:
            exc.__suppress_context__ = False  # a state `raise ... from None` would have changed
            raised.append(exc)
            raise

    middleware = TripwireMiddleware(app)

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        try:
            await middleware(scope, receive, send)
        except BaseException as exc:
            if scope["type"] == "http":
                arrived.append(exc)
                await _respond(send, 500, b"caught outside")
            else:
                raise

    with serve(outer, server_kind) as running:
        response = httpx.get(running.url + "/x")
    assert response.text == "caught outside"
    assert arrived[-1] is raised[-1]
    exc = arrived[-1]
    assert isinstance(exc.__cause__, KeyError) and exc.__context__ is exc.__cause__
    assert exc.__suppress_context__ is False
    (event,) = settle(events, 1)
    assert [v["type"] for v in event["exception"]["values"]] == ["KeyError", "RuntimeError"]


def test_an_app_reading_receive_itself_gets_the_whole_body(server_kind: str, events: CapturedEvents) -> None:
    """A raw app behind the middleware reads a large chunked body itself, byte for byte."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        await _respond(send, 200, body)

    def chunks() -> Any:
        for i in range(64):
            yield bytes([65 + i % 26]) * 4096

    with serve(TripwireMiddleware(app), server_kind) as running:
        response = httpx.post(running.url + "/upload", content=chunks(), timeout=10)
    assert response.status_code == 200
    assert response.content == b"".join(chunks())


def test_the_middleware_never_reads_a_body_the_app_did_not_read(
    server_kind: str, events: CapturedEvents
) -> None:
    """When the app fails without touching the body, the event has no body and the body stays unread."""
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise ValueError("did not read")

    middleware = TripwireMiddleware(app)

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def counting_receive() -> Any:
            if scope["type"] == "http":
                calls.append("receive")
            return await receive()

        await middleware(scope, counting_receive, send)

    with serve(counting, server_kind) as running:
        httpx.post(
            running.url + "/x", content=b'{"password": "x"}', headers={"content-type": "application/json"}
        )
    (event,) = settle(events, 1)
    assert "data" not in event["request"]
    assert calls == []


class _Asgi2App:
    """An ASGI 2 double-callable application."""

    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] != "http":
            return
        if self.scope["path"] == "/boom":
            raise ValueError("asgi2 boom")
        await _respond(send, 200, b"asgi2 ok")


def test_asgi2_applications_are_detected_and_reported(server_kind: str, events: CapturedEvents) -> None:
    """An ASGI 2 app works behind the middleware, and its errors are reported."""
    with serve(TripwireMiddleware(_Asgi2App), server_kind) as running:
        assert httpx.get(running.url + "/ok").text == "asgi2 ok"
        assert httpx.get(running.url + "/boom").status_code == 500
    (event,) = settle(events, 1)
    assert event["exception"]["values"][-1]["value"] == "asgi2 boom"
    assert event["transaction"] == "/boom"


def test_nested_middlewares_report_once_and_count_one_session(
    server_kind: str, events: CapturedEvents
) -> None:
    """Wrapping twice (app and add_middleware, say) still gives one event and one session per request."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise ValueError("twice wrapped")

    with serve(TripwireMiddleware(TripwireMiddleware(app)), server_kind) as running:
        httpx.get(running.url + "/x")
    captured = settle(events, 1)
    assert len(captured) == 1
    assert wait_sessions(events, 1) == {"crashed": 1}


def test_a_new_scope_inside_a_request_between_two_middlewares_still_counts_once(
    events: CapturedEvents,
) -> None:
    """Outer middleware, a new_scope() fork, inner middleware: the inner one passes through."""

    async def inner_app(scope: Any, receive: Any, send: Any) -> None:
        tripwire.capture_message("from the fork", "warning")
        raise ValueError("inside a fork")

    inner = TripwireMiddleware(inner_app)

    async def forking_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        with tripwire.new_scope():
            tripwire.set_tag("fork", "yes")
            await inner(scope, receive, send)

    with serve(TripwireMiddleware(forking_app), "uvicorn") as running:
        httpx.get(running.url + "/f")
    message, error = sorted(settle(events, 2), key=lambda e: "exception" in e)
    assert message["tags"] == {"fork": "yes"}  # captured inside the fork
    assert "tags" not in error  # reported by the outer middleware, after the fork ended
    for event in (message, error):
        assert event["request"]["url"] == running.url + "/f"
        assert [c["category"] for c in event["breadcrumbs"]["values"]].count("http.server") == 1
    assert wait_sessions(events, 1) == {"crashed": 1}


def test_a_request_served_inside_a_new_scope_inherits_it_and_never_writes_to_it(
    events: CapturedEvents,
) -> None:
    """Tags of an enclosing fork reach the request's events; the request's own never leak out."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        tripwire.set_tag("request", "mine")
        tripwire.capture_message("inside")
        await _respond(send, 200, b"ok")

    middleware = TripwireMiddleware(app)
    scope = {"type": "http", "method": "GET", "path": "/in", "root_path": "", "headers": []}

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    async def main() -> None:
        with tripwire.new_scope():
            tripwire.set_tag("outer", "yes")
            await middleware(scope, receive, send)
            tripwire.capture_message("after")

    asyncio.run(main())
    inside, after = sorted(settle(events, 2), key=lambda e: e["logentry"]["message"] != "inside")
    assert (inside["tags"]["outer"], inside["tags"]["request"]) == ("yes", "mine")
    assert inside["request"]["url"].endswith("/in")
    assert after["tags"] == {"outer": "yes"}
    assert "request" not in after


def test_starlette_add_middleware_reports_with_the_route(server_kind: str, events: CapturedEvents) -> None:
    """app.add_middleware(TripwireMiddleware) works like wrapping, route template included."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def item(request: Any) -> Any:
        raise LookupError(request.path_params["item_id"])

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    app.add_middleware(TripwireMiddleware)
    with serve(app, server_kind) as running:
        assert httpx.get(running.url + "/items/7").status_code == 500
    (event,) = settle(events, 1)
    assert event["transaction"] == "/items/{item_id}"
    assert event["exception"]["values"][-1]["value"] == "7"


def test_client_disconnect_while_reading_is_not_an_error(server_kind: str, events: CapturedEvents) -> None:
    """A client that hangs up in the middle of its body makes Starlette raise ClientDisconnect: no event."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    done: list[str] = []

    async def upload(request: Request) -> Response:
        try:
            return Response(await request.body())
        finally:
            done.append("finished")

    app = TripwireMiddleware(Starlette(routes=[Route("/upload", upload, methods=["POST"])]))
    with serve(app, server_kind) as running:
        with socket.create_connection(("127.0.0.1", running.port)) as conn:
            conn.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            time.sleep(0.02)
        assert done == ["finished"]
        assert httpx.get(running.url + "/nothing").status_code == 404
        totals = wait_sessions(events, 2)
    tripwire.flush(5)
    assert list(events) == []
    assert totals == {"exited": 2}


def test_cancelled_and_disconnect_exceptions_are_not_reported(
    server_kind: str, events: CapturedEvents
) -> None:
    """CancelledError and websocket disconnects escaping the app are framework noise, not events."""
    from starlette.websockets import WebSocketDisconnect

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/cancelled":
            raise asyncio.CancelledError()
        if scope["path"] == "/disconnect":
            raise WebSocketDisconnect(1001)
        raise ValueError("real")

    with serve(TripwireMiddleware(app), server_kind) as running:
        httpx.get(running.url + "/cancelled")
        httpx.get(running.url + "/disconnect")
        httpx.get(running.url + "/real")
    captured = settle(events, 1)
    assert [e["exception"]["values"][-1]["value"] for e in captured] == ["real"]


async def _streaming_app_that_breaks(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise ValueError("stream broke")


def test_an_error_after_the_response_started_keeps_the_status_when_tracked(
    server_kind: str, events: CapturedEvents
) -> None:
    """With track_response_status, a stream failing midway shows the status already sent (200)."""
    app = TripwireMiddleware(_streaming_app_that_breaks, track_response_status=True)
    with serve(app, server_kind) as running, pytest.raises(httpx.HTTPError):
        httpx.get(running.url + "/stream")
    (event,) = settle(events, 1)
    assert event["exception"]["values"][-1]["value"] == "stream broke"
    assert event["breadcrumbs"]["values"][0]["data"]["status_code"] == 200


def test_by_default_a_failed_request_s_crumb_says_500(server_kind: str, events: CapturedEvents) -> None:
    """Untracked (the default), the crumb of a request whose exception escaped says what servers answer."""
    app = TripwireMiddleware(_streaming_app_that_breaks)
    with serve(app, server_kind) as running, pytest.raises(httpx.HTTPError):
        httpx.get(running.url + "/stream")
    (event,) = settle(events, 1)
    crumb = event["breadcrumbs"]["values"][0]
    assert crumb["category"] == "http.server"
    assert crumb["data"]["url"].endswith("/stream")
    assert (crumb["data"]["status_code"], crumb["level"]) == (500, "error")


def _executor_app(install: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tripwire.asgi import use_context_preserving_executor

    def sync_work() -> None:
        tripwire.set_tag("from_thread", "yes")
        raise ValueError("in the executor")

    async def view(request: Request) -> Response:
        tripwire.set_tag("request", "r1")
        await asyncio.get_running_loop().run_in_executor(None, sync_work)
        return Response("unreachable")

    async def lifespan(app: Any) -> Any:
        if install:
            executor = use_context_preserving_executor()
            yield
            executor.shutdown(wait=False)
        else:
            yield

    from contextlib import asynccontextmanager

    return TripwireMiddleware(Starlette(routes=[Route("/", view)], lifespan=asynccontextmanager(lifespan)))


@pytest.mark.parametrize("install", [True, False], ids=["with-executor", "default-executor"])
def test_context_preserving_executor_keeps_the_request_scope(server_kind: str, install: bool) -> None:
    """With ContextPreservingExecutor, code run by run_in_executor sets tags on the request's event;
    with the default executor (and the threading integration's patch off) it does not."""
    captured = CapturedEvents()
    tripwire.init(
        reporters=[CaptureReporter(captured)],
        disabled_integrations=["threading"],
        include_local_variables=False,
    )
    with serve(_executor_app(install=install), server_kind) as running:
        httpx.get(running.url + "/")
    (event,) = settle(captured, 1)
    assert event["tags"]["request"] == "r1"
    assert ("from_thread" in event["tags"]) is install


def _ok_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _respond(send, 200, b"ok")

    return TripwireMiddleware(app)


@pytest.mark.parametrize(
    "options",
    [{"auto_session_tracking": False, "release": "1.0"}, {}],
    ids=["auto_session_tracking-off", "no-release"],
)
def test_no_sessions_without_release_or_when_switched_off(options: dict[str, Any]) -> None:
    """Release health is off without a release or with auto_session_tracking=False: nothing is counted."""
    captured = CapturedEvents()
    client = tripwire.init(reporters=[CaptureReporter(captured)], **options)
    with serve(_ok_app(), "uvicorn") as running:
        for _ in range(3):
            assert httpx.get(running.url).text == "ok"
    tripwire.flush(5)
    assert captured.sessions == []
    if client.sessions is not None:
        assert client.sessions.take() == []


def test_without_tripwire_initialised_the_app_runs_unchanged() -> None:
    """With no client the middleware only passes the connection through."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _respond(send, 201, await _read_body(receive))

    with serve(TripwireMiddleware(app), "uvicorn") as running:
        response = httpx.post(running.url, content=b"payload")
    assert (response.status_code, response.content) == (201, b"payload")


def test_mounted_routes_are_named_with_the_mount_prefix(server_kind: str, events: CapturedEvents) -> None:
    """A route inside a Starlette Mount is named /api/items/{item_id}, not by its concrete path."""
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    async def item(request: Any) -> Any:
        raise LookupError("missing")

    app = Starlette(routes=[Mount("/api", routes=[Route("/items/{item_id}", item)])])
    with serve(TripwireMiddleware(app), server_kind) as running:
        assert httpx.get(running.url + "/api/items/7").status_code == 500
    (event,) = settle(events, 1)
    assert event["transaction"] == "/api/items/{item_id}"
    assert event["request"]["url"] == running.url + "/api/items/7"


def test_a_transaction_set_by_the_app_wins(events: CapturedEvents) -> None:
    """tripwire.set_transaction() inside the request overrides the route template."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def view(request: Any) -> Any:
        tripwire.set_transaction("checkout")
        raise ValueError("x")

    with serve(TripwireMiddleware(Starlette(routes=[Route("/pay/{n}", view)])), "uvicorn") as running:
        httpx.get(running.url + "/pay/1")
    (event,) = settle(events, 1)
    assert event["transaction"] == "checkout"


def test_error_statuses_are_not_reported_unless_configured(events: CapturedEvents) -> None:
    """Without failed_status_codes a plain 503 response is not an event; with it, it is one."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _respond(send, 503, b"down")

    with serve(TripwireMiddleware(app), "uvicorn") as running:
        httpx.get(running.url + "/a")
    tripwire.flush(5)
    assert list(events) == []
    with serve(TripwireMiddleware(app, failed_status_codes={503}), "uvicorn") as running:
        httpx.get(running.url + "/b")
    (event,) = settle(events, 1)
    assert event["logentry"]["message"] == "GET /b returned 503"


def test_sessions_reach_a_sentry_server_as_aggregates() -> None:
    """Over the real Sentry reporter, request sessions arrive at the server as a `sessions` item."""
    from tests.support.sink import Sink

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise ValueError("crash")
        await _respond(send, 200, b"ok")

    with Sink() as sink:
        tripwire.init(sink.dsn, release="web@2", environment="staging", include_local_variables=False)
        with serve(TripwireMiddleware(app), "uvicorn") as running:
            for path in ("/a", "/b", "/boom"):
                httpx.get(running.url + path)
        tripwire.flush(5)  # the server has stopped: every request has ended and been counted
        assert sink.wait_until(lambda: bool(sink.items("sessions")), timeout=10)
        (item,) = sink.items("sessions")
    assert item["attrs"] == {"release": "web@2", "environment": "staging"}
    (aggregate,) = item["aggregates"]
    assert (aggregate.get("exited"), aggregate.get("crashed")) == (2, 1)


def test_litestar_middleware_list_is_supported(server_kind: str, events: CapturedEvents) -> None:
    """Litestar(middleware=[TripwireMiddleware]) reports handler errors once, with the route template."""
    from litestar import Litestar, get

    @get("/orders/{order_id:int}")
    async def order(order_id: int) -> None:
        raise RuntimeError(f"order {order_id}")

    # Litestar annotates middleware with its TypedDict scopes, which mypy will not match with the
    # MutableMapping scope of a framework-neutral ASGI middleware; at run time the class is accepted.
    app = Litestar(
        route_handlers=[order],
        middleware=[TripwireMiddleware],  # type: ignore[list-item]
        logging_config=None,
    )
    with serve(app, server_kind) as running:
        assert httpx.get(running.url + "/orders/5").status_code == 500
    captured = settle(events, 1)
    assert len(captured) == 1
    assert captured[0]["exception"]["values"][-1]["value"] == "order 5"
    assert captured[0]["transaction"] == "/orders/{order_id}"
    assert captured[0]["request"]["url"] == running.url + "/orders/5"


def test_starlette_middleware_declaration_passes_options(events: CapturedEvents) -> None:
    """Middleware(TripwireMiddleware, failed_status_codes=...) in Starlette's list takes the options."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def teapot(request: Any) -> Any:
        return PlainTextResponse("no", status_code=418)

    app = Starlette(
        routes=[Route("/tea", teapot)], middleware=[Middleware(TripwireMiddleware, failed_status_codes={418})]
    )
    with serve(app, "uvicorn") as running:
        assert httpx.get(running.url + "/tea").status_code == 418
    (event,) = settle(events, 1)
    assert event["logentry"]["message"] == "GET /tea returned 418"
    assert event["transaction"] == "/tea"


@pytest.mark.parametrize(
    "options",
    [{"failed_status_codes": ["5xx"]}, {"max_request_body_size": "10k"}, {"asgi_version": 4}],
    ids=["status-codes", "body-size", "asgi-version"],
)
def test_wrong_options_fail_at_construction(options: dict[str, Any]) -> None:
    """A wrong middleware option raises ConfigurationError naming it, when the app is built."""
    with pytest.raises(tripwire.ConfigurationError, match=next(iter(options))):
        TripwireMiddleware(_ok_app(), **options)


def test_the_scope_endpoint_names_the_transaction_without_a_route(
    server_kind: str, events: CapturedEvents
) -> None:
    """A framework that sets only the ASGI scope's ``endpoint`` (sentry-asgi's source of the name)
    names the transaction module.function, not the URL path."""

    async def checkout(scope: Any, receive: Any, send: Any) -> None:
        raise LookupError("no cart")

    async def router(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        scope["endpoint"] = checkout
        await checkout(scope, receive, send)

    with serve(TripwireMiddleware(router), server_kind) as running:
        assert httpx.get(running.url + "/cart/17/checkout").status_code == 500
    (event,) = settle(events, 1)
    assert event["transaction"] == f"{__name__}.{checkout.__qualname__}"
    assert event["transaction_info"] == {"source": "component"}
