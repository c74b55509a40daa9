"""Sanic in ASGI mode: the errors Sanic turns into 500 responses itself, with their route.

Serve the Sanic app through ``tripwire.asgi.TripwireMiddleware`` under an ASGI server (uvicorn,
hypercorn): the middleware gives each request its scope, request data and session, as for any ASGI
app. But Sanic answers a handler's exception with its own error response, so the exception never
reaches the middleware; this integration (on by default, waiting for the app to import ``sanic``)
reports it from ``ErrorHandler.response`` (where Sanic picks the error response), with the route
template (``/items/<iid:int>``), before
Sanic's error handler runs. ``SanicException`` statuses below 500 (404, 400, ...) are not errors.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from ._common import Integration, Patches

__all__ = ["SanicIntegration"]


def _route(request: Any) -> str | None:
    try:
        path = request.route.path if request.route is not None else None
    except Exception:
        return None
    if not isinstance(path, str):
        return None
    return path if path.startswith("/") else "/" + path


def _wrap_response(original: Callable[..., Any]) -> Callable[..., Any]:
    def response(handler: Any, request: Any, exception: BaseException) -> Any:
        if isinstance(exception, Exception):
            status = getattr(exception, "status_code", None)
            if not (isinstance(status, int) and status < 500):
                from ..asgi import capture_request_exception  # the reporting rule of the ASGI hooks

                capture_request_exception(exception, "sanic", _route(request))
        return original(handler, request, exception)

    return response


class SanicIntegration(Integration):
    """Report the exceptions Sanic answers with an error response (with ``TripwireMiddleware``)."""

    identifier: ClassVar[str] = "sanic"

    def __init__(self) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("sanic.handlers.error", self._patch)

    def _patch(self, module: ModuleType) -> None:
        # ErrorHandler.response, not Sanic.handle_exception: Sanic recompiles the latter from its
        # source at startup ("touchup"), which would drop a wrapper.
        self._patches.replace(module.ErrorHandler, "response", _wrap_response)

    def uninstall(self) -> None:
        self._patches.undo()
