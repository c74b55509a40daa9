"""Tornado: every request handler's uncaught errors, with the request, its route and its own scope.

On by default; it waits for the app to import ``tornado.web`` (tornado is never imported by
tripwire). Each request's handler runs in its own isolation scope (a ``Connection`` over Tornado's
``HTTPServerRequest``), so tags, user and breadcrumbs set while handling it stay with it, and one
release-health session is counted per request. An uncaught error is reported from
``RequestHandler.log_exception`` — where Tornado logs it before answering 500 with ``write_error`` —
so the app's response is unchanged; ``HTTPError`` below 500 is not an error. The transaction is the
URL pattern the request matched (``/items/([0-9]+)``). The ``tornado.access`` logger is ignored by the
logging integration while this one is installed (it logs each 500 at ERROR: a second event).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

from .._connection import Connection
from .._requests import close_request, open_request
from . import logging as logging_integration
from ._common import Integration, Patches

__all__ = ["TornadoIntegration", "TornadoRequest"]

ACCESS_LOGGER = "tornado.access"


class TornadoRequest(Connection):
    """One Tornado request: its ``scope`` is Tornado's ``HTTPServerRequest``."""

    __slots__ = ()

    @property
    def request(self) -> Any:
        return self.scope

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.request.headers.get_all():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    def url(self, headers: Mapping[str, str]) -> str:
        request = self.request
        return f"{request.protocol}://{request.host}{request.path}"

    def is_websocket(self) -> bool:
        return str(self.request.headers.get("Upgrade", "")).lower() == "websocket"

    def method(self) -> str | None:
        return str(self.request.method)

    def query_string(self) -> str:
        return str(self.request.query)

    def client_address(self) -> str | None:
        remote = self.request.remote_ip
        return str(remote) if remote else None

    def transaction(self) -> tuple[str, str]:
        if self.route:
            return self.route, "route"
        return self.request.path or "/", "url"


def url_pattern(handler: Any) -> str | None:
    """The URL pattern of the application's rule that routed this request to ``handler``."""
    try:
        application = handler.application
        request = handler.request
        for router in (application.wildcard_router, application.default_router):
            for rule in router.rules:
                if rule.target is not type(handler):
                    continue
                regex = getattr(rule.matcher, "regex", None)
                if regex is None or rule.matcher.match(request) is None:
                    continue
                pattern = str(regex.pattern)
                return pattern[:-1] if pattern.endswith("$") else pattern
    except Exception:
        return None
    return None


def _wrap_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _execute(handler: Any, *args: Any, **kwargs: Any) -> Any:
        conn = open_request(TornadoRequest, handler.request, handler.request.path)
        if conn is None:
            return await original(handler, *args, **kwargs)
        try:
            return await original(
                handler, *args, **kwargs
            )  # spans lines: see asgi.TripwireMiddleware.__call__ (traceback formatting cost)
        finally:
            try:
                conn.status = handler.get_status()
            except Exception:
                pass
            close_request(conn)

    return _execute


def _wrap_log_exception(original: Callable[..., Any], http_error: type) -> Callable[..., Any]:
    def log_exception(handler: Any, typ: Any, value: Any, tb: Any) -> Any:
        if isinstance(value, Exception):
            status = getattr(value, "status_code", None)
            if not (isinstance(value, http_error) and isinstance(status, int) and status < 500):
                from ..asgi import capture_request_exception  # the reporting rule the ASGI hooks use

                capture_request_exception(value, "tornado", url_pattern(handler))
        return original(handler, typ, value, tb)

    return log_exception


class TornadoIntegration(Integration):
    """Report uncaught errors of Tornado request handlers, one scope and session per request."""

    identifier: ClassVar[str] = "tornado"

    def __init__(self) -> None:
        self._patches = Patches()
        self._ignored = False

    def install(self) -> None:
        self._patches.when_imported("tornado.web", self._patch)
        # Tornado's access log writes every 500 response at ERROR level: the error itself is
        # reported from log_exception, so that line would be a second event for the same request.
        if ACCESS_LOGGER not in logging_integration._IGNORED:
            logging_integration.ignore_logger(ACCESS_LOGGER)
            self._ignored = True

    def _patch(self, module: ModuleType) -> None:
        handler = module.RequestHandler
        http_error = module.HTTPError
        self._patches.replace(handler, "_execute", _wrap_execute)
        self._patches.replace(
            handler, "log_exception", lambda original: _wrap_log_exception(original, http_error)
        )

    def uninstall(self) -> None:
        self._patches.undo()
        if self._ignored:
            logging_integration._IGNORED.discard(ACCESS_LOGGER)
            self._ignored = False
