"""Error reporting and release health for aiohttp servers.

>>> from aiohttp import web
>>> import tripwire, tripwire.aiohttp
>>> tripwire.init("http://key@127.0.0.1:8000/1", release="1.0")  # doctest: +SKIP
>>> app = web.Application(middlewares=[tripwire.aiohttp.middleware])  # doctest: +SKIP

Per request one :class:`AiohttpRequest` (a ``Connection`` over aiohttp's request) is the isolation
scope of the handler, so tags, user and breadcrumbs set while handling it stay with it; the request
data (scrubbed headers, query string, and the body if the handler read it) and the route template
(``match_info.route``) are computed on the worker thread when an event is built. Errors are reported
and re-raised unchanged; ``web.HTTPException`` responses below 500 are not errors. Outgoing requests
of ``aiohttp.ClientSession`` leave breadcrumbs (``AiohttpIntegration``, on by default).

aiohttp is never imported by this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._connection import BodyCopy, Connection
from ._requests import close_request, open_request
from .asgi import capture_request_exception

__all__ = ["AiohttpRequest", "middleware"]

#: The largest body kept for an event (as the ASGI and WSGI middlewares' default).
MAX_REQUEST_BODY_SIZE = 10_000

Handler = Callable[[Any], Awaitable[Any]]


class AiohttpRequest(Connection):
    """One aiohttp request: its ``scope`` is aiohttp's ``web.Request``."""

    __slots__ = ()

    @property
    def request(self) -> Any:
        return self.scope

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.request.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    def url(self, headers: Mapping[str, str]) -> str:
        request = self.request
        return f"{request.scheme}://{request.host}{request.path}"

    def is_websocket(self) -> bool:
        return str(self.request.headers.get("Upgrade", "")).lower() == "websocket"

    def method(self) -> str | None:
        return str(self.request.method)

    def query_string(self) -> str:
        return str(self.request.query_string)

    def client_address(self) -> str | None:
        remote = self.request.remote
        return str(remote) if remote else None

    def transaction(self) -> tuple[str, str]:
        if self.route:
            return self.route, "route"
        route = route_template(self.request)
        if route:
            return route, "route"
        return self.request.path or "/", "url"


def route_template(request: Any) -> str | None:
    """The matched route's template (``/items/{iid}``), if the request matched one."""
    try:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else None
    except Exception:
        return None
    return canonical if isinstance(canonical, str) and canonical else None


def _keep_body(conn: AiohttpRequest) -> None:
    # aiohttp keeps the body once the handler read it (read(), text(), json(), post()); never read
    # it ourselves.
    raw = getattr(conn.request, "_read_bytes", None)
    if raw:
        body = conn.body = BodyCopy(MAX_REQUEST_BODY_SIZE)
        body.add(bytes(raw))


async def middleware(request: Any, handler: Handler) -> Any:
    """The aiohttp middleware: ``web.Application(middlewares=[tripwire.aiohttp.middleware])``."""
    conn = open_request(AiohttpRequest, request, request.path)
    if conn is None:
        return await handler(request)
    try:
        response = await handler(
            request
        )  # spans lines: see asgi.TripwireMiddleware.__call__ (traceback formatting cost)
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and status < 500:
            conn.status = status  # an HTTP error response raised on purpose (404, 403, ...)
        else:
            _keep_body(conn)
            capture_request_exception(exc, "aiohttp", route_template(request))
        raise
    else:
        conn.status = getattr(response, "status", None)
        return response
    finally:
        close_request(conn)


middleware.__middleware_version__ = 1  # type: ignore[attr-defined]  # what @web.middleware sets
