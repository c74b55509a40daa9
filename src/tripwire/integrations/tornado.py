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

from types import ModuleType
from typing import ClassVar

from . import logging as logging_integration
from ._common import Integration, Patches

__all__ = ["TornadoIntegration"]

ACCESS_LOGGER = "tornado.access"


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
        from ._tornado_hooks import wrap_execute, wrap_log_exception

        handler = module.RequestHandler
        http_error = module.HTTPError
        self._patches.replace(handler, "_execute", wrap_execute)
        self._patches.replace(
            handler, "log_exception", lambda original: wrap_log_exception(original, http_error)
        )

    def uninstall(self) -> None:
        self._patches.undo()
        if self._ignored:
            logging_integration._unignore_logger(ACCESS_LOGGER)
            self._ignored = False
