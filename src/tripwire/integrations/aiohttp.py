"""Outgoing HTTP breadcrumbs for aiohttp's ``ClientSession``.

The same breadcrumb as the ``stdlib`` and ``httpx`` integrations, with category ``aiohttp``: method,
URL without secrets, status, reason and duration. aiohttp is never imported by tripwire: the hook is
set up when the app imports ``aiohttp.client`` (or right away if it already has). The server side is
``tripwire.aiohttp.middleware``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals
from ._common import Integration, Patches, add_crumb
from .stdlib import _is_sdk_request, http_breadcrumb

__all__ = ["AiohttpIntegration"]


def _record(
    method: str, url: Any, response: Any, error: BaseException | None, started: float, t0: float
) -> None:
    try:
        client = _globals.client
        if client is None:
            return
        from yarl import URL  # aiohttp's own URL type: loaded by now

        parsed = url if isinstance(url, URL) else URL(str(url))
        if _is_sdk_request(parsed.host or "", parsed.port, parsed.path):
            return
        crumb = http_breadcrumb(
            "aiohttp",
            method.upper(),
            str(parsed),
            started=started,
            duration=time.perf_counter() - t0,
            status=None if response is None else response.status,
            reason=None if response is None else response.reason,
            error=error,
        )
        add_crumb(client, crumb, {"aiohttp_response": response})
    except Exception:
        pass


def _wrap_request(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _request(session: Any, method: str, str_or_url: Any, *args: Any, **kwargs: Any) -> Any:
        if _globals.client is None:
            return await original(session, method, str_or_url, *args, **kwargs)
        started, t0 = time.time(), time.perf_counter()
        try:
            response = await original(session, method, str_or_url, *args, **kwargs)
        except Exception as exc:
            _record(method, str_or_url, None, exc, started, t0)
            raise
        _record(method, str_or_url, response, None, started, t0)
        return response

    return _request


class AiohttpIntegration(Integration):
    """Leave a breadcrumb for every request sent with an aiohttp ``ClientSession``."""

    identifier: ClassVar[str] = "aiohttp"

    def __init__(self) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("aiohttp.client", self._patch)

    def _patch(self, module: ModuleType) -> None:
        self._patches.replace(module.ClientSession, "_request", _wrap_request)

    def uninstall(self) -> None:
        self._patches.undo()
