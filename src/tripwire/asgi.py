"""Error reporting and release health for any ASGI application.

>>> import tripwire
>>> from tripwire.asgi import TripwireMiddleware
>>> tripwire.init("http://key@127.0.0.1:8000/1", release="1.0")  # doctest: +SKIP
>>> app = TripwireMiddleware(app)  # doctest: +SKIP

or, with Starlette and FastAPI, ``app.add_middleware(TripwireMiddleware)``.

What a GET request pays when nothing goes wrong: one small object (its ``Connection``: the scope
holder, whose scope data is made only if something needs it, see ``_connection``), one
context-variable swap and its reset, a clock read and a counter increment. Nothing is copied or
parsed, and the request's messages pass untouched: the request data, the transaction name and the
request breadcrumb are computed from the ASGI scope on the worker thread, and only if an event is
built. The middleware never reads the request body; for
requests that may have one it keeps a bounded copy of what the application itself reads
(``max_request_body_size``).

Exceptions are reported and then re-raised as the very same object: ``__cause__``, ``__context__`` and
``__suppress_context__`` are never touched. Frameworks that turn errors into 500 responses themselves
(Django, Quart, Litestar) are hooked through their own error signals, so those errors are reported
once, with the request's data.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import operator
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from . import _globals, _scope
from ._connection import ASGIApp, Connection, Message, Receive, Scope, Send, new_connection
from ._exceptions import ConfigurationError
from ._scope import _ROOT, _isolation
from ._sessions import EXITED
from ._tracing import (
    Transaction,
    activate,
    deactivate,
    new_transaction,
    random_source,
    read_incoming,
    sample,
    status_for_http,
)

__all__ = ["ContextPreservingExecutor", "TripwireMiddleware", "use_context_preserving_executor"]

logger = logging.getLogger("tripwire")

_T = TypeVar("_T")

#: Exception class names that mean "the client went away", not "the application is broken".
_NOISE = frozenset(
    {
        "CancelledError",
        "ClientDisconnect",
        "ClientDisconnected",
        "WebSocketDisconnect",
        "ConnectionClosed",
        "ConnectionClosedOK",
        "ConnectionClosedError",
        "RequestAborted",
        "BrokenPipeError",
        "ConnectionResetError",
    }
)


def is_noise(exc: BaseException) -> bool:
    """True for what is not an application error: client disconnects, cancellation, HTTP errors < 500."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _NOISE:
            return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and not isinstance(status, bool) and status < 500


def _http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def _looks_like_asgi3(app: Any) -> bool:
    if isinstance(app, type):
        return hasattr(app, "__await__")
    if asyncio.iscoroutinefunction(app):
        return True
    try:
        call = app.__call__
    except AttributeError:
        return False
    return asyncio.iscoroutinefunction(call)


def _asgi2_adapter(app: Any) -> ASGIApp:
    def call(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        instance = app(scope)
        result: Awaitable[None] = instance(receive, send)
        return result

    return call


_ASGI_MECHANISM = {"type": "asgi", "handled": False}
_UNBOUND = object()
_time = time.time
#: Requests that (practically) never carry a body: their ``receive`` is not wrapped at all.
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _current_connection() -> Connection | None:
    holder = _scope.isolation_holder()
    return holder if isinstance(holder, Connection) else None


def capture_request_exception(
    exc: BaseException, mechanism_type: str, route: str | None = None
) -> str | None:
    """Report ``exc`` for the current request (used by the framework hooks); never raises."""
    try:
        client = _globals.client
        if client is None or is_noise(exc):
            return None
        holder = _current_connection()
        status = _http_status(exc)
        if holder is not None:
            if route:
                holder.route = route
            if holder.status is None:
                holder.status = status or 500  # what the framework is about to answer
        # An HTTP error >= 500 raised on purpose was handled by the app; anything else crashed it.
        handled = status is not None
        event_id = client.capture_exception(exc, mechanism={"type": mechanism_type, "handled": handled})
        if holder is not None and event_id is not None:
            holder.last_event_id = event_id
        return event_id
    except Exception:
        logger.exception("tripwire: could not report a request exception")
        return None


# -- framework hooks: errors the framework turns into a 500 response itself ------------------------

_hooked: set[str] = set()


def _django_got_request_exception(sender: Any, request: Any = None, **_: Any) -> None:
    exc = sys.exc_info()[1]
    if exc is None:
        return
    route = None
    match = getattr(request, "resolver_match", None)
    if match is not None and getattr(match, "route", None):
        route = match.route if match.route.startswith("/") else "/" + match.route
    capture_request_exception(exc, "django", route)


async def _quart_got_exception(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
    if exception is None:
        return
    route = None
    try:
        from quart import has_request_context, has_websocket_context, request, websocket

        ctx = request if has_request_context() else websocket if has_websocket_context() else None
        rule = getattr(ctx, "url_rule", None) if ctx is not None else None
        route = getattr(rule, "rule", None)
    except Exception:
        route = None
    capture_request_exception(exception, "quart", route)


async def _litestar_after_exception(exc: Exception, scope: Scope) -> None:
    capture_request_exception(exc, "litestar")


def install_framework_hooks(app: Any = None, scope: Scope | None = None) -> None:
    """Connect to the error signals of the frameworks that are loaded (idempotent, cheap)."""
    try:
        if "django" not in _hooked and "django.core.signals" in sys.modules:
            from django.core.signals import got_request_exception

            got_request_exception.connect(
                _django_got_request_exception, weak=False, dispatch_uid="tripwire.asgi"
            )
            _hooked.add("django")
        if "quart" not in _hooked and "quart.signals" in sys.modules:
            from quart.signals import got_request_exception as quart_http
            from quart.signals import got_websocket_exception

            quart_http.connect(_quart_got_exception, weak=False)
            got_websocket_exception.connect(_quart_got_exception, weak=False)
            _hooked.add("quart")
        if "litestar" in sys.modules:
            for candidate in (app, scope.get("litestar_app") if scope is not None else None):
                hooks = getattr(candidate, "after_exception", None)
                if isinstance(hooks, list) and _litestar_after_exception not in hooks:
                    hooks.append(_litestar_after_exception)
    except Exception:
        logger.exception("tripwire: could not connect to the framework's error signals")


def middleware_options(
    failed_status_codes: Iterable[int], max_request_body_size: int
) -> tuple[frozenset[int], int]:
    """The ASGI and WSGI middlewares' shared options, checked: ``(status codes, body size >= 0)``."""
    if isinstance(max_request_body_size, bool) or not isinstance(max_request_body_size, int):
        raise ConfigurationError(
            f"TripwireMiddleware: max_request_body_size must be an int, got {max_request_body_size!r}"
        )
    try:
        codes = frozenset(int(code) for code in failed_status_codes)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"TripwireMiddleware: failed_status_codes must be status codes, got {failed_status_codes!r}"
        ) from None
    return codes, max(0, max_request_body_size)


class TripwireMiddleware:
    """Report errors of an ASGI application and track one release-health session per connection.

    :param app: the ASGI application (ASGI 3, or ASGI 2 double-callable: detected).
    :param failed_status_codes: also report responses with these statuses when no exception was
        reported for the request, e.g. ``range(500, 600)``. Default: none. Implies
        ``track_response_status``.
    :param track_response_status: watch every response's start message, so that the request's
        breadcrumb shows the status actually sent, even when an error comes after the response
        started (a streaming response failing midway). Off by default: every request then makes its
        Connection up front and pays two more Python calls; without it the breadcrumb of a request
        that failed says 500 (what the server answers), or the status the framework chose.
    :param max_request_body_size: keep a copy of up to this many bytes of the body *the application
        reads*, to attach to its events (0: never). The middleware itself never reads the body.
    :param flush_on_shutdown: on lifespan shutdown, wait (up to ``shutdown_timeout``) until
        everything captured is delivered.
    :param asgi_version: 2 or 3 to skip the detection.
    :raises ConfigurationError: for an option of the wrong kind (at construction, never per request).

    >>> app = TripwireMiddleware(app, failed_status_codes=range(500, 600))  # doctest: +SKIP
    """

    def __init__(
        self,
        app: Any,
        *,
        failed_status_codes: Iterable[int] = (),
        track_response_status: bool = False,
        max_request_body_size: int = 10_000,
        flush_on_shutdown: bool = True,
        asgi_version: int | None = None,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"TripwireMiddleware: app must be an ASGI callable, got {app!r}")
        if asgi_version not in (None, 2, 3):
            raise ConfigurationError(f"TripwireMiddleware: asgi_version must be 2 or 3, got {asgi_version!r}")
        codes, max_request_body_size = middleware_options(failed_status_codes, max_request_body_size)
        self.app = app
        if asgi_version is None:
            asgi_version = 3 if _looks_like_asgi3(app) else 2
        self._app: ASGIApp = app if asgi_version == 3 else _asgi2_adapter(app)
        self.failed_status_codes = codes
        self.max_request_body_size = max_request_body_size
        self.flush_on_shutdown = flush_on_shutdown
        #: The client the per-request state below was made for (re-checked on every request).
        self._client: Any = _UNBOUND
        #: The client's session aggregator, and ``next()`` on its ``exited`` counts a request that
        #: ended well; ``_exited`` is None when release health is off.
        self._sessions: Any = None
        self._exited: Any = None
        #: Whether the client traces (transactions may be sampled): cached with the client.
        self._tracing = False
        #: ``traces_sample_rate`` when no ``traces_sampler`` decides (the decision is then made in
        #: ``_enter``, see there), else None; and the random draw it is compared with.
        self._head_rate: float | None = None
        self._random: Callable[[], float] = _never
        self.track_response_status = bool(track_response_status or codes)
        self._watch_bodies = self.max_request_body_size > 0
        install_framework_hooks(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Kept short on purpose, with the app's await as early as possible: on every failing
        # request the server logs a traceback through this frame, and Python 3.11's traceback
        # formatting decodes code positions from the function's start up to the await (measured:
        # ~70 µs per failing request for the await at the end of a long function).
        conn = self._enter(scope, receive, send)
        if conn is None:
            await self._other(scope, receive, send)
            return
        try:
            # Each call spans lines on purpose: Python 3.11 parses the source segment of a one-line
            # call (for its ^^^ markers) in every traceback through here, ~30 µs per failing request.
            if conn.app_send is None:
                await self._app(scope, receive, send)
            else:
                await self._app(scope, conn.app_receive, conn.app_send)
        except Exception as exc:
            self._on_exception(conn, exc)
            raise
        else:
            if self.failed_status_codes:
                self._check_status(conn)
        finally:
            # Inline rather than a helper: code after the await does not slow tracebacks down, and a
            # call here would cost every request.
            if conn.txn is not None:
                _finish_transaction(conn, conn.txn)
            _isolation.reset(conn.token)
            if conn.app_send is not None:
                conn.unwatch()
            exited = self._exited
            if exited is not None:
                if conn.outcome == EXITED:
                    next(exited)  # the common case: one C call, see _sessions
                else:
                    self._sessions.record(conn.started, conn.outcome)

    def _enter(self, scope: Scope, receive: Receive, send: Send) -> Connection | None:
        """The request's Connection, installed as the isolation scope; None when it is not ours."""
        # Runs on every request, so it is written for the fewest bytecodes: the client's state is
        # cached by _bind.
        kind = scope["type"]
        client = _globals.client
        if client is not self._client:
            self._bind(client, scope)
        if client is None or (kind != "http" and kind != "websocket"):
            return None
        parent = _isolation.get()
        if parent is not _ROOT and isinstance(parent.unit_of_work(), Connection):
            return None  # an outer TripwireMiddleware already handles this connection
        try:  # subscripts, not .get(): this runs on every request
            path, root_path, method = scope["path"], scope["root_path"], scope["method"]
        except KeyError:  # a websocket has no method; root_path is optional
            path, root_path = scope.get("path", ""), scope.get("root_path", "")
            method = scope.get("method")
        conn = new_connection(parent.data, scope, path, root_path, _time())
        conn.token = _isolation.set(conn)
        if self._tracing:
            # The common unsampled request (no traces_sampler, no propagation header) is decided
            # here with C calls only: no Python call, no draw at a rate of 0.
            rate = self._head_rate
            try:
                plain = rate is not None and _NO_PROPAGATION(map(_NAME, scope.get("headers") or ()))
            except Exception:
                plain = False  # headers that are no list of pairs: _start_transaction copes
            if not plain or rate is None:
                _start_transaction(client, conn, scope, kind)
            elif rate == 0.0:
                next(client.sampled_out)
            else:
                rand = self._random()
                if rand < rate:
                    _start_transaction(client, conn, scope, kind, (rate, rand))
                else:
                    next(client.sampled_out)
        # Watched: everything with track_response_status, requests that may carry a body (when a
        # copy of it is kept), websockets, sampled requests (their transaction needs the status).
        if (
            self.track_response_status
            or conn.txn is not None
            or (method not in _NO_BODY_METHODS and self._watch_bodies)
            or kind != "http"
        ):
            self._watch(conn, kind == "http", receive, send)
        return conn

    def _watch(self, conn: Connection, http: bool, receive: Receive, send: Send) -> None:
        # What the app gets instead of the server's receive and send: to copy the body the app
        # reads, to learn a websocket's status, to learn every response's status
        # (track_response_status, failed_status_codes).
        conn.server_send = send
        conn.app_receive = receive
        if not http:
            conn.app_send = conn.websocket_send
            return
        if self._watch_bodies and conn.scope.get("method") not in _NO_BODY_METHODS:
            conn.app_receive = conn.track_body(receive, self.max_request_body_size)
        conn.app_send = conn.send if self.track_response_status or conn.txn is not None else send

    def _bind(self, client: Any, scope: Scope) -> None:
        # Once per client (the first request, and after a re-init): what every request needs of it.
        self._client = client
        self._tracing = client is not None and client.tracing
        self._head_rate = None
        if self._tracing and client.options.traces_sampler is None:
            self._head_rate = client.options.traces_sample_rate or 0.0
            self._random = random_source()
        sessions = client.sessions if client is not None else None
        if sessions is not None and sessions.auto:
            sessions.start()
            self._sessions = sessions
            self._exited = sessions.exited
        else:
            self._exited = None
        install_framework_hooks(self.app, scope)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Lifespan, unknown scope types, tripwire disabled, or nested inside another middleware.
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    def _on_exception(self, conn: Connection, exc: Exception) -> None:
        try:
            client = _globals.client
            if client is None or is_noise(exc):
                return
            if conn.status is None:
                conn.status = 500  # what the server answers for it
            if conn.txn is not None and conn.txn.status is None:
                conn.txn.status = "internal_error"
            status = _http_status(exc)
            mechanism = _ASGI_MECHANISM if status is None else {"type": "asgi", "handled": True}
            event_id = client.capture_exception(exc, mechanism=mechanism)
            if event_id is not None:
                conn.last_event_id = event_id
        except Exception:
            logger.exception("tripwire: could not report the request's exception")

    def _check_status(self, conn: Connection) -> None:
        if conn.status in self.failed_status_codes and conn.outcome == EXITED:
            self._report_status(conn)

    def _report_status(self, conn: Connection) -> None:
        try:
            client = _globals.client
            if client is None:
                return
            method = conn.scope.get("method") or "WEBSOCKET"
            event_id = client.capture_message(
                f"{method} {conn.root_path}{conn.path} returned {conn.status}", "error"
            )
            if event_id is not None:
                conn.last_event_id = event_id
        except Exception:
            logger.exception("tripwire: could not report the response status")

    # -- lifespan ------------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The lifespan task gets its own scope, named after the current phase, so that whatever is
        # reported during startup or shutdown (by us, by logging, by the app) says so.
        state: dict[str, Any] = {"phase": None, "reported": False}

        def enter(phase: str) -> None:
            state["phase"] = phase
            holder = _scope.current_holder()
            holder.data = _scope.replace_field(holder.data, transaction=f"lifespan.{phase}")

        async def lifespan_receive() -> Message:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                enter("startup")  # the app speaks lifespan: its errors are real errors
            elif kind == "lifespan.shutdown":
                enter("shutdown")
            return message

        async def lifespan_send(message: Message) -> None:
            kind = message.get("type")
            if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
                # Called from inside the app's ``except`` block: the exception is still current.
                state["reported"] = True
                self._capture_lifespan(sys.exc_info()[1], message.get("message"))
            if kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed") and self.flush_on_shutdown:
                await self._flush()
            await send(message)

        with _scope.isolation_scope():
            try:
                await self._app(scope, lifespan_receive, lifespan_send)
            except Exception as exc:
                # Servers may raise their own error from ``send`` after a failure message (hypercorn):
                # the app's error is reported already.
                if state["phase"] is not None and not state["reported"]:
                    self._capture_lifespan(exc, None)
                raise

    def _capture_lifespan(self, exc: BaseException | None, message: Any) -> None:
        try:
            client = _globals.client
            if client is None:
                return
            if exc is not None:
                client.capture_exception(exc, mechanism={"type": "asgi.lifespan", "handled": False})
            elif message:
                name = _scope.snapshot().transaction or "lifespan"
                client.capture_message(f"ASGI {name} failed: {message}", "error")
        except Exception:
            logger.exception("tripwire: could not report a lifespan error")

    async def _flush(self) -> None:
        client = _globals.client
        if client is None:
            return
        try:
            await asyncio.to_thread(client.flush, client.options.shutdown_timeout)
        except Exception:
            logger.exception("tripwire: flush on lifespan shutdown failed")


# -- tracing ------------------------------------------------------------------------------------

_PROPAGATION_HEADERS = frozenset({b"sentry-trace", b"baggage", b"traceparent"})
#: ``_NO_PROPAGATION(map(_NAME, headers))``: no propagation header among an ASGI scope's headers,
#: in C (a set method over a map), not a Python loop.
_NO_PROPAGATION = _PROPAGATION_HEADERS.isdisjoint
_NAME = operator.itemgetter(0)


def _never() -> float:
    return 1.0  # a draw nothing is sampled by (the stand-in until a client is bound)


def _start_transaction(
    client: Any, conn: Connection, scope: Scope, kind: str, head: tuple[float, float] | None = None
) -> None:
    """Decide whether this request is sampled; if so, start its transaction and make it active.

    Only the propagation headers are read; an unsampled request makes nothing (its trace id, when
    the caller sent one, becomes the request's, so its errors join the caller's trace). ``head``:
    (rate, draw) of a request ``_enter`` already sampled.
    """
    try:
        if head is not None:
            _begin(client, conn, kind, None, None, "", head[0], head[1])
            return
        incoming: dict[str, str] | None = None
        # Header names as the server gives them: ASGI servers lowercase them (Starlette's Headers
        # relies on it too), so no .lower() per header of every request.
        for name, value in scope.get("headers") or ():
            if name in _PROPAGATION_HEADERS:
                if incoming is None:
                    incoming = {}
                incoming[name.decode("latin-1")] = value.decode("latin-1")
        parent, dsc, others = (None, None, "") if incoming is None else read_incoming(incoming)
        if parent is not None:
            conn.trace_id = parent.trace_id
        sampled, rate, rand = sample(client, {"asgi_scope": scope}, parent, dsc)
        if not sampled:
            next(client.sampled_out)
            return
        _begin(client, conn, kind, parent, dsc, others, rate, rand)
    except Exception:
        logger.exception("tripwire: could not start the request's transaction")


def _begin(
    client: Any,
    conn: Connection,
    kind: str,
    parent: Any,
    dsc: dict[str, str] | None,
    others: str,
    rate: float,
    rand: float,
) -> None:
    """Start the transaction of a sampled request and make it active."""
    try:
        txn = new_transaction(
            client,
            name="",  # the route template, known once the framework routed: read on the worker
            op="http.server" if kind == "http" else "websocket.server",
            source="url",
            parent=parent,
            incoming_dsc=dsc,
            baggage_others=others,
            sample_rate=rate,
            sample_rand=rand,
            request=conn,
            start=conn.started,
        )
        conn.trace_id = txn.trace_id_
        conn.span_token = activate(txn)
        conn.txn = txn
    except Exception:
        logger.exception("tripwire: could not start the request's transaction")


def _finish_transaction(conn: Connection, txn: Transaction) -> None:
    try:
        try:
            deactivate(conn.span_token)
        except ValueError:  # reset from another context: nothing to undo here
            pass
        if txn.status is None:
            status = conn.status
            if status is not None:
                txn.status = status_for_http(status if status != 101 else 200)
                txn.set_data("http.response.status_code", status)
            else:
                txn.status = "cancelled"  # the request ended without a response (a disconnect)
        txn.finish()
    except Exception:
        logger.exception("tripwire: could not finish the request's transaction")


# -- executors ------------------------------------------------------------------------------------


class ContextPreservingExecutor(ThreadPoolExecutor):
    """A thread pool that runs each job in a copy of the submitter's context.

    ``loop.run_in_executor(None, fn)`` does not copy context variables, so a sync view run that way
    would not see the request's scope (tags, user, breadcrumbs). ``asyncio.to_thread`` and Starlette's
    and Django's thread pools already copy it; this is for the rest:

    >>> loop.set_default_executor(ContextPreservingExecutor())  # doctest: +SKIP
    """

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)


def use_context_preserving_executor(
    loop: asyncio.AbstractEventLoop | None = None, max_workers: int | None = None
) -> ContextPreservingExecutor:
    """Make a :class:`ContextPreservingExecutor` the default executor of ``loop`` (default: running)."""
    executor = ContextPreservingExecutor(max_workers=max_workers, thread_name_prefix="tripwire-ctx")
    (loop or asyncio.get_running_loop()).set_default_executor(executor)
    return executor
