"""Outgoing HTTP breadcrumbs for httpx (``Client`` and ``AsyncClient``).

The same breadcrumb as the ``stdlib`` integration, with category ``httpx``: method, URL without
secrets, status, reason and duration. No header is added. httpx is never imported by tripwire: the
hook is set up when the app imports httpx (or right away if it already has).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals
from . import Integration
from ._common import Patches, add_crumb
from .stdlib import _is_sdk_request, http_breadcrumb

__all__ = ["HttpxIntegration"]


def _record(request: Any, response: Any, error: BaseException | None, started: float, t0: float) -> None:
    try:
        client = _globals.client
        if client is None:
            return
        url = request.url
        if _is_sdk_request(url.host, url.port, url.path):
            return
        crumb = http_breadcrumb(
            "httpx",
            request.method,
            str(url),
            started=started,
            duration=time.perf_counter() - t0,
            status=None if response is None else response.status_code,
            reason=None if response is None else response.reason_phrase,
            error=error,
        )
        add_crumb(client, crumb, {"httpx_request": request, "httpx_response": response})
    except Exception:
        pass


def _wrap_send(original: Callable[..., Any]) -> Callable[..., Any]:
    def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if _globals.client is None:
            return original(client, request, *args, **kwargs)
        started, t0 = time.time(), time.perf_counter()
        try:
            response = original(client, request, *args, **kwargs)
        except Exception as exc:
            _record(request, None, exc, started, t0)
            raise
        _record(request, response, None, started, t0)
        return response

    return send


def _wrap_asend(original: Callable[..., Any]) -> Callable[..., Any]:
    async def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if _globals.client is None:
            return await original(client, request, *args, **kwargs)
        started, t0 = time.time(), time.perf_counter()
        try:
            response = await original(client, request, *args, **kwargs)
        except Exception as exc:
            _record(request, None, exc, started, t0)
            raise
        _record(request, response, None, started, t0)
        return response

    return send


class HttpxIntegration(Integration):
    """Leave a breadcrumb for every request sent with an httpx client."""

    identifier: ClassVar[str] = "httpx"

    def __init__(self) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("httpx", self._patch)

    def _patch(self, module: ModuleType) -> None:
        self._patches.replace(module.Client, "send", _wrap_send)
        self._patches.replace(module.AsyncClient, "send", _wrap_asend)

    def uninstall(self) -> None:
        self._patches.undo()
