"""What the Tornado integration installs once the app imports ``tornado.web`` (see ``tornado``).

Kept apart so that ``init()`` does not load ``_connection`` (and its imports) for an app that never
uses Tornado.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._connection import Connection
from .._requests import close_request, open_request

__all__ = ["TornadoRequest", "url_pattern", "wrap_execute", "wrap_log_exception"]


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


def wrap_execute(original: Callable[..., Any]) -> Callable[..., Any]:
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


def wrap_log_exception(original: Callable[..., Any], http_error: type) -> Callable[..., Any]:
    def log_exception(handler: Any, typ: Any, value: Any, tb: Any) -> Any:
        if isinstance(value, Exception):
            status = getattr(value, "status_code", None)
            if not (isinstance(value, http_error) and isinstance(status, int) and status < 500):
                from ..asgi import capture_request_exception  # the reporting rule the ASGI hooks use

                capture_request_exception(value, "tornado", url_pattern(handler))
        return original(handler, typ, value, tb)

    return log_exception
