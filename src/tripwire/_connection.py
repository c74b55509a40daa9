"""One http request or websocket connection as the ASGI middleware sees it (see ``tripwire.asgi``).

Per request the middleware makes one :class:`Connection`, installed as the isolation scope: it is the
request's scope holder, its release-health session and its event processor. Making it is cheap (one
slotted object; nothing is copied or parsed): its scope data is made the first time anything reads it
(a scope setter, a capture, a log breadcrumb), so a request that never touches its scope and never
reports costs that one object.

Everything about the request that an event needs (URL, scrubbed headers, query string, body, route,
breadcrumb) is computed from the ASGI scope by :meth:`Connection.process_event`, on the worker thread,
and only when an event is built.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextvars import Token
from typing import Any
from urllib.parse import parse_qsl

from . import _globals
from ._scope import ScopeData, ScopeHolder, SessionTracker
from ._scrub import Scrubber
from ._sessions import CRASHED, ERRORED, EXITED
from ._tracing import Span, Transaction
from ._types import Breadcrumb, Event, Hint

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyCopy:
    """The bounded copy of a request body the application reads (``max_request_body_size``)."""

    __slots__ = ("data", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: What was read so far; None once it went over the limit (then only ``size`` counts).
        self.data: bytearray | None = bytearray()
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if self.size > self.limit:
            return
        self.size += len(chunk)
        if self.data is not None:
            if self.size <= self.limit:
                self.data.extend(chunk)
            else:
                self.data = None  # over the limit: drop what we kept, remember the size only


class Connection(ScopeHolder):
    """One http request or websocket connection, as one object.

    * its **scope holder**. Its scope data is made lazily: until the first read it is the enclosing
      scope's (immutable) data, and that read adds the request's event processor. Once made,
      connection → data → processor → connection is a reference cycle; the garbage collector frees
      it (requests that report nothing never have one);
    * its **release-health session** (``session`` is the connection itself, ``mark_error``);
    * its **event processor** (:meth:`process_event`), which adds the request to events built for it.

    ``data`` and ``session`` are properties here, over ``_data`` and ``_session``: they shadow the
    base class's slots of the same names, which a connection never uses.
    """

    __slots__ = (
        "_base",
        "_data",
        "_session",
        "app_receive",
        "app_send",
        "body",
        "outcome",
        "path",
        "root_path",
        "route",
        "scope",
        "server_receive",
        "server_send",
        "span_token",
        "started",
        "status",
        "token",
        "txn",
    )

    sampling_decided = True

    # Fields (set by new_connection(), which makes one per request; see ScopeHolder on why there is
    # no __init__):
    #: What the scope inherits: the enclosing scope's data when the request started.
    _base: ScopeData
    _data: ScopeData | None
    _session: SessionTracker | None
    #: The ASGI scope, and the original path and root_path (frameworks rewrite the scope's while
    #: routing: mounts, Litestar).
    scope: Scope
    path: str
    root_path: str
    #: When the request started (epoch seconds).
    started: float
    status: int | None
    #: The release-health outcome: EXITED (0), then ERRORED or CRASHED as errors are reported.
    outcome: int
    #: The route template a framework hook reported, if any.
    route: str | None
    #: Only on a watched connection (see ``TripwireMiddleware._watch``): the send the application
    #: gets instead of the server's (None: the server's own), and ``app_receive``.
    app_send: Send | None
    #: The copy of the body the application reads, when one is kept.
    body: BodyCopy | None
    #: The request's transaction when tracing sampled it (None otherwise), and the token that
    #: makes it the active span for the application (see ``_tracing``).
    txn: Transaction | None
    span_token: Token[Span | None]

    #: The context-variable token that restores the enclosing scope: set as the connection is installed.
    token: Token[ScopeHolder]
    #: Set only on a watched connection, before the application runs: the receive the application
    #: gets, and the server's receive and send.
    app_receive: Receive
    server_receive: Receive
    server_send: Send

    # -- the scope holder's lazy parts ----------------------------------------------------------

    @property
    def data(self) -> ScopeData:
        data = self._data
        if data is None:
            base = self._base
            if base.breadcrumbs or base.processors or base.transaction is not None:
                base = base.for_new_unit_of_work()
            data = self._data = base.with_processor(self.process_event)
        return data

    @data.setter
    def data(self, value: ScopeData) -> None:
        self._data = value

    @property
    def session(self) -> SessionTracker | None:
        # The connection counts its own errors, unless an application session was started inside it.
        own = self._session
        return self if own is None else own

    @session.setter
    def session(self, value: SessionTracker | None) -> None:
        self._session = value

    def unwatch(self) -> None:
        """Forget what the application got: bound methods of this object, a reference cycle.

        Called at the end of the request, so that a watched connection is freed by reference counting
        like any other (not left to the garbage collector).
        """
        self.app_send = None
        del self.app_receive

    # -- on the event loop ------------------------------------------------------------------

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function returning the server's awaitable: no extra coroutine per message.
        if message["type"] == "http.response.start":
            self.status = message.get("status")
        return self.server_send(message)

    def websocket_send(self, message: Message) -> Awaitable[None]:
        kind = message["type"]
        if kind == "websocket.accept":
            self.status = 101
        elif kind == "websocket.http.response.start":  # a denial response
            self.status = message.get("status")
        return self.server_send(message)

    async def receive(self) -> Message:
        message = await self.server_receive()
        if message.get("type") == "http.request" and self.body is not None:
            chunk = message.get("body") or b""
            if chunk:
                self.body.add(chunk)
        return message

    def track_body(self, receive: Receive, limit: int) -> Receive:
        """Keep a copy of up to ``limit`` bytes of the body the application reads."""
        self.server_receive = receive
        self.body = BodyCopy(limit)
        return self.receive

    def mark_error(self, *, handled: bool) -> None:
        if not handled:
            self.outcome = CRASHED
        elif self.outcome == EXITED:
            self.outcome = ERRORED

    # -- on the worker, when an event is built ---------------------------------------------

    def process_event(self, event: Event, hint: Hint) -> Event:
        client = _globals.client
        scrubber = client.scrubber if client is not None else Scrubber()
        request = self.request_data(scrubber)
        existing = event.get("request")
        event["request"] = {**request, **existing} if isinstance(existing, Mapping) else request
        if not event.get("transaction"):
            name, source = self.transaction()
            event["transaction"] = name
            event["transaction_info"] = {"source": source}
        crumbs = event.get("breadcrumbs")
        values = crumbs.get("values") if isinstance(crumbs, Mapping) else None
        crumb = self.breadcrumb(request)
        event["breadcrumbs"] = {"values": [crumb, *values] if isinstance(values, list) else [crumb]}
        return event

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.scope.get("headers") or ():
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    def url(self, headers: Mapping[str, str]) -> str:
        scope = self.scope
        websocket = scope.get("type") == "websocket"
        scheme = scope.get("scheme") or ("ws" if websocket else "http")
        host = headers.get("host")
        if not host:
            server = scope.get("server")
            if server:
                host_name, port = server[0], server[1]
                default = (
                    port is None
                    or (scheme in ("http", "ws") and port == 80)
                    or (scheme in ("https", "wss") and port == 443)
                )
                host = str(host_name) if default else f"{host_name}:{port}"
            else:
                host = "localhost"
        return f"{scheme}://{host}{self.root_path}{self.path}"

    def request_data(self, scrubber: Scrubber) -> dict[str, Any]:
        """The ``request`` interface, scrubbed: cookies and the client address only with PII."""
        pii = scrubber.send_default_pii
        headers = self.headers()
        data: dict[str, Any] = {"url": self.url(headers)}
        method = self.method()
        if method:
            data["method"] = method
        query = self.query_string()
        if query:
            data["query_string"] = scrubber.scrub_query_string(query)
        if pii and "cookie" in headers:
            data["cookies"] = scrubber.scrub_mapping(parse_cookies(headers["cookie"]))
        data["headers"] = scrubber.scrub_headers(headers)
        if pii:
            address = self.client_address()
            if address:
                data["env"] = {"REMOTE_ADDR": address}
        if self.body is not None and self.body.size:
            data["data"] = body_data(self.body, headers.get("content-type", ""), scrubber)
        return data

    # What request_data() reads, one method each, so that the WSGI, Tornado and aiohttp requests
    # (subclasses over their own request objects) share the rest: scrubbing, cookies, body.

    def is_websocket(self) -> bool:
        return bool(self.scope.get("type") == "websocket")

    def method(self) -> str | None:
        method: str | None = self.scope.get("method")
        return method

    def query_string(self) -> str:
        query: bytes = self.scope.get("query_string") or b""
        return query.decode("latin-1")

    def client_address(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def transaction(self) -> tuple[str, str]:
        """The route template if the framework exposes one, else the path."""
        if self.route:
            return self.route, "route"
        scope = self.scope
        route = scope.get("route")  # Starlette and FastAPI
        path = getattr(route, "path", None)
        if isinstance(path, str) and path:
            mount = scope.get("root_path", "")
            prefix = mount[len(self.root_path) :] if mount.startswith(self.root_path) else ""
            return prefix + path, "route"
        template = scope.get("path_template")  # Litestar
        if isinstance(template, str) and template:
            return template, "route"
        endpoint = scope.get("endpoint")  # the handler, as sentry-asgi names the transaction by it
        if endpoint is not None:
            name = _qualified_name(endpoint)
            if name:
                return name, "component"
        return f"{self.root_path}{self.path}" or "/", "url"

    def breadcrumb(self, request: Mapping[str, Any]) -> Breadcrumb:
        websocket = self.is_websocket()
        data: dict[str, Any] = {"url": request["url"]}
        if "method" in request:
            data["method"] = request["method"]
        if self.status is not None:
            data["status_code"] = self.status
        return {
            "timestamp": self.started,
            "type": "http",
            "category": "websocket" if websocket else "http.server",
            "level": "error" if (self.status or 0) >= 500 else "info",
            "data": data,
        }


def new_connection(base: ScopeData, scope: Scope, path: str, root_path: str, started: float) -> Connection:
    """The Connection of a request that starts now (made by the middleware, for every request)."""
    conn = Connection()
    conn.last_event_id = None
    conn.trace_id = None
    conn._base = base
    conn._data = None
    conn._session = None
    conn.scope = scope
    conn.path = path
    conn.root_path = root_path
    conn.started = started
    conn.status = None
    conn.outcome = EXITED
    conn.route = None
    conn.app_send = None
    conn.body = None
    conn.txn = None
    return conn


def body_data(body: BodyCopy, content_type: str, scrubber: Scrubber) -> Any:
    """The ``data`` of the request interface: parsed and scrubbed when we know the content type."""
    if body.data is None:
        return f"[{body.size} bytes, over max_request_body_size: not sent]"
    raw = bytes(body.data)
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        if kind == "application/json" or kind.endswith("+json"):
            return scrubber.scrub(json.loads(raw))
        if kind == "application/x-www-form-urlencoded":
            return scrubber.scrub_mapping(dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)))
        if kind.startswith("multipart/"):
            return f"[multipart body of {len(raw)} bytes: not sent]"
        if kind.startswith("text/") or not kind:
            return scrubber.scrub_text(raw.decode("utf-8", "replace"))
    except ValueError:
        return scrubber.scrub_text(raw.decode("utf-8", "replace"))
    return f"[{kind} body of {len(raw)} bytes: not sent]"


def parse_cookies(header: str) -> dict[str, str]:
    cookies = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies[name] = value
    return cookies


def _qualified_name(func: Any) -> str | None:
    """``module.Class.method`` of a handler (or its class, for an instance), never raising."""
    try:
        target = func if hasattr(func, "__qualname__") else type(func)
        qualname = getattr(target, "__qualname__", None)
        if not isinstance(qualname, str):
            return None
        module = getattr(target, "__module__", None)
        return f"{module}.{qualname}" if isinstance(module, str) and module else qualname
    except Exception:
        return None
