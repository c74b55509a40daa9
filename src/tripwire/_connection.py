"""One http request or websocket connection as the ASGI middleware sees it (see ``tripwire.asgi``).

Per request the middleware builds only a **request marker**: a plain list (the cheapest object Python
builds) holding what an event about the request would need later, installed as the isolation scope.
Its :class:`Connection`, the scope holder proper, is made the first time anything needs it (a scope
setter, a capture, a log breadcrumb), or up front when the middleware must watch the request's messages
(a body to copy, a websocket, ``failed_status_codes``). A request that never touches its scope and
never reports costs one list and no other object.

Everything about the request that an event needs (URL, scrubbed headers, query string, body, route,
breadcrumb) is computed from the ASGI scope by :meth:`Connection.process_event`, on the worker thread,
and only when an event is built.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from . import _globals, _scope
from ._forksafe import renew_lock_after_fork
from ._scope import ScopeData, ScopeHolder
from ._scrub import Scrubber, scrubber_for
from ._sessions import CRASHED, ERRORED, EXITED
from ._types import Breadcrumb, Event, Hint

if TYPE_CHECKING:
    from ._scope import SessionTracker  # a Protocol, which exists for type checkers only

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The request marker's items, in order (see the module docstring; built by ``TripwireMiddleware``):
#: its Connection once made; the enclosing scope's data when the request started; the ASGI scope;
#: the original path and root_path (frameworks rewrite them while routing: mounts, Litestar); the
#: start time (epoch seconds); the context-variable token to restore at the end; only on a watched
#: request (see ``TripwireMiddleware._watch``), the receive and send the application gets. (Those two
#: live here, not on the Connection: as its bound methods they would make a reference cycle.)
CONN, BASE, SCOPE, PATH, ROOT_PATH, STARTED, TOKEN, RECEIVE, SEND = range(9)
RequestMarker = list[Any]

class _Making:
    """Holds the lock under which a marker's Connection is made (renewed in forked children)."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        renew_lock_after_fork(self)


_making = _Making()
_new_object = object.__new__


def connection_of(marker: RequestMarker) -> Connection:
    """The marker's Connection, made on first use (from any task or thread of the request)."""
    conn: Connection | None = marker[CONN]
    if conn is not None:
        return conn
    with _making._lock:  # two threads of one request must end up with the same holder
        conn = marker[CONN]
        if conn is None:
            conn = new_connection(marker)
    return conn


def new_connection(marker: RequestMarker) -> Connection:
    """Make the marker's Connection now. Without a lock: only while nothing else can see the marker."""
    conn: Connection = _new_object(Connection)
    conn._base = marker[BASE]
    conn.scope = marker[SCOPE]
    conn.path = marker[PATH]
    conn.root_path = marker[ROOT_PATH]
    conn.started = marker[STARTED]
    marker[CONN] = conn
    return conn


_scope.holder_of_request = connection_of


class Connection(ScopeHolder):
    """One http request or websocket connection, as one object (made when first needed).

    * its **scope holder**: what the request marker stands for (see the module docstring). Its scope
      data is made lazily too: until the first read it is the enclosing scope's (immutable) data, and
      that read adds the request's event processor;
    * its **release-health session** (``session`` is the connection itself, ``mark_error``);
    * its **event processor** (:meth:`process_event`), which adds the request to events built for it.
      Once the scope data is made, connection → data → processor → connection is a reference cycle;
      the garbage collector frees it (requests that report nothing never have one).
    """

    # No __slots__ here on purpose: with an instance dict, class attributes serve as defaults (they
    # even shadow the base class's slots), so a connection only stores the values that differ.
    last_event_id: str | None = None
    trace_id: str | None = None
    _data: ScopeData | None = None
    _session: SessionTracker | None = None
    status: int | None = None
    #: The release-health outcome: EXITED (0), then ERRORED or CRASHED as errors are reported.
    outcome: int = EXITED
    route: str | None = None
    #: Copied from the request marker by :func:`connection_of`: what the scope inherits, the ASGI
    #: scope, and where and when the request started.
    _base: ScopeData
    scope: Scope
    path: str
    root_path: str
    started: float
    #: Only on a watched connection (see ``TripwireMiddleware._watch``): the server's ``send``.
    _send: Send
    # Set only when the body is tracked (http, max_request_body_size > 0).
    _receive: Receive
    body_limit: int = 0
    body: bytearray | None = None
    body_size: int = 0

    # -- the scope holder's lazy slots ----------------------------------------------------------

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

    # -- on the event loop ------------------------------------------------------------------

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function returning the server's awaitable: no extra coroutine per message.
        if message["type"] == "http.response.start":
            self.status = message.get("status")
        return self._send(message)

    def websocket_send(self, message: Message) -> Awaitable[None]:
        kind = message["type"]
        if kind == "websocket.accept":
            self.status = 101
        elif kind == "websocket.http.response.start":  # a denial response
            self.status = message.get("status")
        return self._send(message)

    async def receive(self) -> Message:
        message = await self._receive()
        if message.get("type") == "http.request":
            chunk = message.get("body") or b""
            if chunk and self.body_size <= self.body_limit:
                self.body_size += len(chunk)
                if self.body_size <= self.body_limit:
                    if self.body is None:
                        self.body = bytearray()
                    self.body.extend(chunk)
                else:
                    self.body = None  # over the limit: drop what we kept, remember the size only
        return message

    def track_body(self, receive: Receive, limit: int) -> Receive:
        self._receive = receive
        self.body_limit = limit
        return self.receive

    def mark_error(self, *, handled: bool) -> None:
        if not handled:
            self.outcome = CRASHED
        elif self.outcome == EXITED:
            self.outcome = ERRORED

    # -- on the worker, when an event is built ---------------------------------------------

    def process_event(self, event: Event, hint: Hint) -> Event:
        client = _globals.client
        scrubber = scrubber_for(client.options) if client is not None else Scrubber()
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
        scope = self.scope
        headers = self.headers()
        data: dict[str, Any] = {"url": self.url(headers)}
        method = scope.get("method")
        if method:
            data["method"] = method
        query = scope.get("query_string") or b""
        if query:
            data["query_string"] = scrubber.scrub_query_string(query.decode("latin-1"))
        if pii and "cookie" in headers:
            data["cookies"] = scrubber.scrub_mapping(parse_cookies(headers["cookie"]))
        data["headers"] = scrubber.scrub_headers(headers)
        if pii:
            client = scope.get("client")
            if client:
                data["env"] = {"REMOTE_ADDR": str(client[0])}
        if self.body_size:
            data["data"] = self.body_data(headers.get("content-type", ""), scrubber)
        return data

    def body_data(self, content_type: str, scrubber: Scrubber) -> Any:
        if self.body is None:
            return f"[{self.body_size} bytes, over max_request_body_size: not sent]"
        raw = bytes(self.body)
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
        return f"{self.root_path}{self.path}" or "/", "url"

    def breadcrumb(self, request: Mapping[str, Any]) -> Breadcrumb:
        websocket = self.scope.get("type") == "websocket"
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


# Every other slot the base class has (or grows) reads as None on a connection until it is set.
for _slot in ScopeHolder.__slots__:
    if _slot not in Connection.__dict__:
        setattr(Connection, _slot, None)


def parse_cookies(header: str) -> dict[str, str]:
    cookies = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies[name] = value
    return cookies
