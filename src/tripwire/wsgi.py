"""Error reporting and release health for any WSGI application (Flask, Django, Falcon, Bottle, Pyramid).

>>> import tripwire
>>> from tripwire.wsgi import TripwireMiddleware
>>> tripwire.init("http://key@127.0.0.1:8000/1", release="1.0")  # doctest: +SKIP
>>> app.wsgi_app = TripwireMiddleware(app.wsgi_app)  # Flask  # doctest: +SKIP
>>> application = TripwireMiddleware(application)  # any other WSGI app  # doctest: +SKIP

The same machinery as the ASGI middleware: per request one :class:`WSGIRequest` (a ``Connection``
over the WSGI environ) installed as the isolation scope, so tags, user and breadcrumbs set while
handling a request stay with it; the request data, transaction and breadcrumb are computed on the
worker thread only when an event is built, scrubbed by the client's scrubber; one release-health
session per request.

Errors raised by the application, by its response iterable (while the server streams it) and by
the iterable's ``close()`` are reported and re-raised as the very same object. The response's chunks
pass through one by one (streaming is never buffered); a ``wsgi.file_wrapper`` response is returned
untouched, so the server can still send the file with ``sendfile``. The body is never read by the
middleware: of what the *application* reads from ``wsgi.input`` a bounded copy is kept
(``max_request_body_size``).

Frameworks that turn errors into 500 responses themselves are hooked where they do it: Flask's
``got_request_exception`` signal, Django's (the same hook as under ASGI), Falcon's default error
handler and Bottle's catch-all; the route template comes from Flask's ``url_rule``, Django's
resolver, Falcon's ``uri_template``, Bottle's route and Pyramid's matched route.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from . import _globals
from ._connection import BodyCopy, Connection
from ._exceptions import ConfigurationError
from ._scope import _ROOT, ScopeData, _isolation
from ._sessions import EXITED
from ._tracing import (
    Transaction,
    activate,
    deactivate,
    new_transaction,
    read_incoming,
    sample,
    status_for_http,
)
from .asgi import capture_request_exception, install_framework_hooks, is_noise, middleware_options

__all__ = ["TripwireMiddleware", "WSGIRequest"]

logger = logging.getLogger("tripwire")

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_time = time.time
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MECHANISM = {"type": "wsgi", "handled": False}
#: Where a framework hook leaves the matched route template in the environ.
ROUTE_KEY = "tripwire.route"


class WSGIRequest(Connection):
    """One WSGI request: its ``scope`` is the WSGI environ (see ``Connection``)."""

    __slots__ = ("start_response",)

    #: The server's ``start_response``.
    start_response: StartResponse

    def watch_start(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Any:
        """What the application gets as ``start_response``: notes the status, calls the server's."""
        try:
            self.status = int(status[:3])
        except ValueError:
            pass
        return self.start_response(status, headers, exc_info)

    # -- what Connection.request_data() reads, from the environ --------------------------------

    def headers(self) -> dict[str, str]:
        environ = self.scope
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").lower()] = str(value)
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = str(environ[key])
        return headers

    def url(self, headers: Mapping[str, str]) -> str:
        environ = self.scope
        scheme = environ.get("wsgi.url_scheme") or "http"
        host = headers.get("host")
        if not host:
            host = str(environ.get("SERVER_NAME") or "localhost")
            port = str(environ.get("SERVER_PORT") or "")
            if port and not ((scheme == "http" and port == "80") or (scheme == "https" and port == "443")):
                host = f"{host}:{port}"
        return f"{scheme}://{host}{self.root_path}{self.path}"

    def method(self) -> str | None:
        method: str | None = self.scope.get("REQUEST_METHOD")
        return method

    def query_string(self) -> str:
        return str(self.scope.get("QUERY_STRING") or "")

    def client_address(self) -> str | None:
        address = self.scope.get("REMOTE_ADDR")
        return str(address) if address else None

    def transaction(self) -> tuple[str, str]:
        if self.route:
            return self.route, "route"
        route = environ_route(self.scope)
        if route:
            return route, "route"
        return f"{self.root_path}{self.path}" or "/", "url"


def environ_route(environ: Mapping[str, Any]) -> str | None:
    """The route template a framework left in the environ (Bottle, Pyramid), if any."""
    route = environ.get("bottle.route")
    rule = getattr(route, "rule", None)
    if isinstance(rule, str) and rule:
        return rule
    route = environ.get(ROUTE_KEY)  # left by a framework hook (Pyramid's route mapper)
    return route if isinstance(route, str) and route else None


def new_request(base: ScopeData, environ: Environ, started: float) -> WSGIRequest:
    """The WSGIRequest of a request that starts now (see ``new_connection``)."""
    request = WSGIRequest()
    request.last_event_id = None
    request.trace_id = None
    request._base = base
    request._data = None
    request._session = None
    request.scope = environ
    request.path = environ.get("PATH_INFO") or ""
    request.root_path = environ.get("SCRIPT_NAME") or ""
    request.started = started
    request.status = None
    request.outcome = EXITED
    request.route = None
    request.app_send = None
    request.body = None
    request.txn = None
    return request


class _Input:
    """``wsgi.input`` as the application sees it: keeps a bounded copy of what it reads."""

    __slots__ = ("_body", "_stream")

    def __init__(self, stream: Any, body: BodyCopy) -> None:
        self._stream = stream
        self._body = body

    def read(self, *args: Any) -> bytes:
        data: bytes = self._stream.read(*args)
        self._body.add(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self._stream.readline(*args)
        self._body.add(data)
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(*args)
        for line in lines:
            self._body.add(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._body.add(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class TripwireMiddleware:
    """Report errors of a WSGI application and track one release-health session per request.

    :param app: the WSGI application.
    :param failed_status_codes: also report responses with these statuses when no exception was
        reported for the request, e.g. ``range(500, 600)``. Default: none. Implies
        ``track_response_status``.
    :param track_response_status: hand the app a ``start_response`` that notes each response's
        status, for the request's breadcrumb on events of requests that did not fail. Off by default
        (as in the ASGI middleware): it costs every request a call; without it the breadcrumb of a
        failed request says 500.
    :param max_request_body_size: keep a copy of up to this many bytes of the body *the application
        reads*, to attach to its events (0: never). The middleware itself never reads the body.
    :raises ConfigurationError: for an option of the wrong kind (at construction, never per request).
    """

    def __init__(
        self,
        app: Any,
        *,
        failed_status_codes: Iterable[int] = (),
        track_response_status: bool = False,
        max_request_body_size: int = 10_000,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"TripwireMiddleware: app must be a WSGI callable, got {app!r}")
        codes, max_request_body_size = middleware_options(failed_status_codes, max_request_body_size)
        self.app = app
        self.failed_status_codes = codes
        self.track_response_status = bool(track_response_status or codes)
        self.max_request_body_size = max_request_body_size
        #: The client the per-request state below was made for (re-checked on every request).
        self._client: Any = _UNBOUND
        self._sessions: Any = None
        self._exited: Any = None
        #: Whether the client traces (transactions may be sampled): cached with the client.
        self._tracing = False
        install_wsgi_framework_hooks()
        adopt_falcon_app(app)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # Runs on every request: written for the fewest bytecodes (the request's object is made
        # inline, the client's state is cached by _bind). Everything else waits for an event.
        client = _globals.client
        if client is not self._client:
            self._bind(client)
        if client is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        parent = _isolation.get()
        if parent is not _ROOT and isinstance(parent.unit_of_work(), Connection):
            return self.app(environ, start_response)  # type: ignore[no-any-return]  # nested
        request = WSGIRequest()
        request.last_event_id = request.trace_id = request._data = request._session = None
        request.status = request.route = request.app_send = request.body = request.txn = None
        request._base = parent.data
        request.scope = environ
        request.path = environ.get("PATH_INFO") or ""
        request.root_path = environ.get("SCRIPT_NAME") or ""
        request.started = _time()
        request.outcome = EXITED
        if self.max_request_body_size and environ.get("REQUEST_METHOD") not in _NO_BODY_METHODS:
            body = request.body = BodyCopy(self.max_request_body_size)
            stream = environ.get("wsgi.input")
            if stream is not None:
                environ["wsgi.input"] = _Input(stream, body)
        token = _isolation.set(request)
        txn = _start_transaction(client, request, environ) if self._tracing else None
        try:
            if self.track_response_status or txn is not None:
                request.start_response = start_response
                result = self.app(environ, request.watch_start)
            else:
                result = self.app(environ, start_response)
        except Exception as exc:
            self._on_exception(request, exc)
            self._end(request)
            raise
        finally:
            if txn is not None:
                _deactivate(request)
            _isolation.reset(token)
        if type(result) is environ.get("wsgi.file_wrapper"):
            # The server sends the file itself (sendfile): hand it over untouched. (Servers check
            # the exact class too.)
            self._end(request)
            return result  # type: ignore[no-any-return]
        # Made without an __init__ (see ScopeHolder: calling a class with one costs ~1,100
        # instructions more), as every request pays for it.
        response = _Response()
        response._middleware = self
        response._request = request
        response._result = result
        return response

    def _bind(self, client: Any) -> None:
        # Once per client (the first request, and after a re-init): what every request needs of it.
        self._client = client
        self._tracing = client is not None and bool(client.tracing)
        sessions = client.sessions if client is not None else None
        if sessions is not None and sessions.auto:
            sessions.start()
            self._sessions = sessions
            self._exited = sessions.exited
        else:
            self._exited = None
        install_wsgi_framework_hooks(tracing=self._tracing)

    def _on_exception(self, request: WSGIRequest, exc: BaseException) -> None:
        try:
            client = _globals.client
            if client is None or is_noise(exc):
                return
            if request.status is None or request.status < 500:
                request.status = 500  # what the server answers for it
            txn = request.txn
            if txn is not None and txn.status is None:
                txn.status = "internal_error"
            event_id = client.capture_exception(exc, mechanism=_MECHANISM)
            if event_id is not None:
                request.last_event_id = event_id
        except Exception:
            logger.exception("tripwire: could not report the request's exception")

    def _end(self, request: WSGIRequest) -> None:
        """The request is over (its response was sent, or it failed): its transaction, its session."""
        try:
            txn = request.txn
            if txn is not None:
                _finish_transaction(request, txn)
            if (
                self.failed_status_codes
                and request.outcome == EXITED
                and request.status in self.failed_status_codes
            ):
                self._report_status(request)
            exited = self._exited
            if exited is not None:
                if request.outcome == EXITED:
                    next(exited)
                else:
                    self._sessions.record(request.started, request.outcome)
        except Exception:
            logger.exception("tripwire: could not end the request's session")

    def _report_status(self, request: WSGIRequest) -> None:
        client = _globals.client
        if client is None:
            return
        token = _isolation.set(request)
        try:
            event_id = client.capture_message(
                f"{request.method()} {request.root_path}{request.path} returned {request.status}", "error"
            )
            if event_id is not None:
                request.last_event_id = event_id
        finally:
            _isolation.reset(token)


class _Response:
    """The application's response iterable, run in the request's scope, its errors reported.

    Chunks pass through one at a time. ``close()`` closes the application's iterable (PEP 3333) and
    ends the request (its transaction, its session); servers call it once the response is sent.
    """

    __slots__ = ("_middleware", "_request", "_result")

    _middleware: TripwireMiddleware
    _request: WSGIRequest
    #: The application's iterable; None once closed.
    _result: Iterable[bytes] | None

    def __iter__(self) -> Iterator[bytes]:
        # The request's scope stays installed while the chunks are produced and handed over (the
        # server's code between two chunks belongs to this request too), and is restored when the
        # iteration ends, fails or is closed. One set/reset per response: a set and a reset around
        # every chunk, with a StopIteration caught for the last, cost ~4x more (bench/wsgi_bench.py).
        request = self._request
        result = self._result
        if result is None:
            return
        token = _isolation.set(request)
        if request.txn is not None:
            request.span_token = activate(request.txn)
        try:
            yield from result
        except Exception as exc:
            self._middleware._on_exception(request, exc)
            raise
        finally:
            try:
                if request.txn is not None:
                    _deactivate(request)
                _isolation.reset(token)
            except ValueError:  # finalised by the garbage collector in another context: nothing to undo
                pass

    def close(self) -> None:
        result = self._result
        if result is None:
            return
        self._result = None
        request = self._request
        middleware = self._middleware
        close = getattr(result, "close", None)
        try:
            if close is not None:
                token = _isolation.set(request)
                if request.txn is not None:
                    request.span_token = activate(request.txn)
                try:
                    close()
                except Exception as exc:
                    middleware._on_exception(request, exc)
                    raise
                finally:
                    if request.txn is not None:
                        _deactivate(request)
                    _isolation.reset(token)
        finally:
            exited = middleware._exited
            if (
                exited is not None
                and request.outcome == EXITED
                and request.txn is None
                and not middleware.failed_status_codes
            ):
                next(exited)  # the common case, inline: one C call (see _sessions)
            else:
                middleware._end(request)


# -- tracing ------------------------------------------------------------------------------------

_UNBOUND = object()


def _start_transaction(client: Any, request: WSGIRequest, environ: Environ) -> Transaction | None:
    """Decide whether this request is sampled; if so, start its transaction and make it active.

    As in the ASGI middleware: only the propagation headers are read; an unsampled request makes
    nothing (its trace id, when the caller sent one, becomes the request's).
    """
    try:
        incoming: dict[str, str] = {}
        for key, name in _PROPAGATION_KEYS:
            value = environ.get(key)
            if value:
                incoming[name] = str(value)
        parent, dsc, others = (None, None, "") if not incoming else read_incoming(incoming)
        if parent is not None:
            request.trace_id = parent.trace_id
        sampled, rate, rand = sample(client, {"wsgi_environ": environ}, parent, dsc)
        if not sampled:
            next(client.sampled_out)
            return None
        txn = new_transaction(
            client,
            name="",  # the route template, known once the framework routed: read on the worker
            op="http.server",
            source="url",
            parent=parent,
            incoming_dsc=dsc,
            baggage_others=others,
            sample_rate=rate,
            sample_rand=rand,
            request=request,
            start=request.started,
        )
        request.trace_id = txn.trace_id_
        request.span_token = activate(txn)
        request.txn = txn
        return txn
    except Exception:
        logger.exception("tripwire: could not start the request's transaction")
        return None


_PROPAGATION_KEYS = (
    ("HTTP_SENTRY_TRACE", "sentry-trace"),
    ("HTTP_BAGGAGE", "baggage"),
    ("HTTP_TRACEPARENT", "traceparent"),
)


def _deactivate(request: WSGIRequest) -> None:
    try:
        deactivate(request.span_token)
    except ValueError:  # reset from another context: nothing to undo here
        pass


def _finish_transaction(request: WSGIRequest, txn: Transaction) -> None:
    try:
        if txn.status is None:
            status = request.status
            if status is not None:
                txn.status = status_for_http(status)
                txn.set_data("http.response.status_code", status)
            else:
                txn.status = "unknown"
        elif request.status is not None:
            txn.set_data("http.response.status_code", request.status)
        txn.finish()
    except Exception:
        logger.exception("tripwire: could not finish the request's transaction")


# -- framework hooks: errors the framework turns into a 500 response itself ------------------------

_hooked: set[str] = set()


def _flask_got_request_exception(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
    if exception is None:
        return
    route = None
    try:
        from flask import has_request_context, request

        if has_request_context():
            rule = request.url_rule
            route = getattr(rule, "rule", None)
    except Exception:
        route = None
    capture_request_exception(exception, "flask", route)


def _flask_request_started(sender: Any, **_: Any) -> None:
    # With tracing on only: the matched route (Flask routes before this signal), for the name of
    # the request's transaction. Errors learn it in _flask_got_request_exception.
    try:
        from flask import request

        holder = _isolation.get().unit_of_work()
        if isinstance(holder, WSGIRequest) and holder.txn is not None:
            route = getattr(request.url_rule, "rule", None)
            if isinstance(route, str) and route:
                holder.route = route
    except Exception:
        pass


def _patch_falcon(module: Any) -> None:
    # Falcon answers an unhandled exception with its default handler for Exception (a 500); the
    # exception never reaches the WSGI server.
    app_class = getattr(module, "App", None)
    original = getattr(app_class, "_python_error_handler", None)
    if original is None or getattr(original, "_tripwire", False):
        return

    _ORIGINAL["falcon"] = original

    def _python_error_handler(self: Any, req: Any, resp: Any, error: BaseException, params: Any) -> Any:
        capture_request_exception(error, "falcon", getattr(req, "uri_template", None))
        return original(self, req, resp, error, params)

    _python_error_handler._tripwire = True  # type: ignore[attr-defined]
    app_class._python_error_handler = _python_error_handler  # type: ignore[union-attr]


def _patch_bottle(module: Any) -> None:
    # Bottle catches every exception of a route (catchall) and answers an HTTPError(500) carrying it.
    bottle = getattr(module, "Bottle", None)
    original = getattr(bottle, "_handle", None)
    if original is None or getattr(original, "_tripwire", False):
        return
    http_error = module.HTTPError

    def _handle(self: Any, environ: Any) -> Any:
        out = original(self, environ)
        if isinstance(out, http_error) and out.status_code >= 500:
            exc = getattr(out, "exception", None)
            if isinstance(exc, Exception):
                capture_request_exception(exc, "bottle", environ_route(environ))
        return out

    _handle._tripwire = True  # type: ignore[attr-defined]
    bottle._handle = _handle  # type: ignore[union-attr]


def _patch_pyramid(module: Any) -> None:
    # Pyramid keeps the matched route on its request object only: note its pattern in the environ
    # when the route mapper matches, for the transaction name.
    mapper = getattr(module, "RoutesMapper", None)
    original: Any = mapper.__dict__.get("__call__") if isinstance(mapper, type) else None
    if original is None or getattr(original, "_tripwire", False):
        return

    def __call__(self: Any, request: Any) -> Any:
        info = original(self, request)
        try:
            route = info["route"]
            if route is not None:
                pattern = str(route.pattern)
                request.environ[ROUTE_KEY] = pattern if pattern.startswith("/") else "/" + pattern
        except Exception:
            pass
        return info

    __call__._tripwire = True  # type: ignore[attr-defined]
    setattr(mapper, "__call__", __call__)  # noqa: B010 (mypy: a class attribute of Any)


def adopt_falcon_app(app: Any) -> None:
    """A Falcon app made before the hook was installed still has the original handler registered."""
    falcon = sys.modules.get("falcon")
    app_class = getattr(falcon, "App", None)
    if app_class is None or not isinstance(app, app_class):
        return
    handlers = getattr(app, "_error_handlers", None)
    handler = handlers.get(Exception) if isinstance(handlers, dict) else None
    if getattr(handler, "__func__", None) is _ORIGINAL.get("falcon"):
        app.add_error_handler(Exception, app._python_error_handler)


#: The functions the hooks replaced, by framework.
_ORIGINAL: dict[str, Any] = {}


def install_wsgi_framework_hooks(*, tracing: bool = False) -> None:
    """Connect to the error paths of the WSGI frameworks that are loaded (idempotent, cheap).

    With ``tracing``, also to where a framework names the route of a request that did not fail
    (Flask's ``request_started``): a receiver there would cost every request otherwise.
    """
    install_framework_hooks()  # Django's got_request_exception, shared with the ASGI middleware
    try:
        if "flask" not in _hooked and "flask.signals" in sys.modules:
            from flask.signals import got_request_exception

            got_request_exception.connect(_flask_got_request_exception, weak=False)
            _hooked.add("flask")
        if tracing and "flask-traced" not in _hooked and "flask.signals" in sys.modules:
            from flask.signals import request_started

            request_started.connect(_flask_request_started, weak=False)
            _hooked.add("flask-traced")
        if "falcon" not in _hooked and "falcon" in sys.modules:
            _patch_falcon(sys.modules["falcon"])
            _hooked.add("falcon")
        if "bottle" not in _hooked and "bottle" in sys.modules:
            _patch_bottle(sys.modules["bottle"])
            _hooked.add("bottle")
        if "pyramid" not in _hooked and "pyramid.urldispatch" in sys.modules:
            _patch_pyramid(sys.modules["pyramid.urldispatch"])
            _hooked.add("pyramid")
    except Exception:
        logger.exception("tripwire: could not connect to the framework's error paths")
