"""Outgoing HTTP breadcrumbs for httpx (``Client`` and ``AsyncClient``).

The same breadcrumb as the ``stdlib`` integration, with category ``httpx``: method, URL without
secrets, status, reason and duration. While tracing, each request is also an ``http.client`` span
and carries the propagation headers (see docs/tracing.md). Otherwise no header is added unless asked with
``HttpxIntegration(trace_propagation_targets=[...])`` (see the stdlib integration). httpx is never
imported by tripwire: the hook is set up when the app imports httpx (or right away if it already has).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals, _scope
from .._tracing import active_span, end_child, outgoing_headers, start_child, target_matches
from ._common import Integration, Patches, add_crumb
from .stdlib import _is_sdk_request, compile_targets, http_breadcrumb, trace_header

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


def _add_trace_header(request: Any, targets: tuple[re.Pattern[str], ...]) -> None:
    if not targets or "sentry-trace" in request.headers:
        return
    try:
        url = request.url
        if not _is_sdk_request(url.host, url.port, url.path):
            header = trace_header(str(url), targets)
            if header is not None:
                request.headers["sentry-trace"] = header
    except Exception:
        pass


def _start_span(client: Any, request: Any) -> Any:
    """With tracing on: this request's ``http.client`` span (if sampled) and propagation headers."""
    try:
        url = request.url
        if _is_sdk_request(url.host, url.port, url.path):
            return None
        full_url = str(url)
        span = start_child("http.client", None, {"http.request.method": request.method, "url": full_url})
        own = "sentry-trace" in request.headers or "traceparent" in request.headers
        if not own and target_matches(client, full_url):  # headers the app set itself are left alone
            headers = outgoing_headers(
                span if span is not None else active_span(),
                _scope.trace_id(),
                w3c=client.options.propagate_traceparent,
                decided=_scope.isolation_holder().sampling_decided,
            )
            for name, value in headers.items():
                request.headers[name] = value
        return span
    except Exception:
        return None


def _end_span(span: Any, response: Any, error: BaseException | None) -> None:
    try:
        if response is not None:
            span.set_http_status(response.status_code)
        end_child(span, error)
    except Exception:
        pass


def _wrap_send(original: Callable[..., Any], targets: tuple[re.Pattern[str], ...]) -> Callable[..., Any]:
    def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if _globals.client is None:
            return original(client, request, *args, **kwargs)
        span = None
        if _globals.client.tracing:
            span = _start_span(_globals.client, request)
        else:
            _add_trace_header(request, targets)
        started, t0 = time.time(), time.perf_counter()
        try:
            response = original(client, request, *args, **kwargs)
        except Exception as exc:
            _record(request, None, exc, started, t0)
            if span is not None:
                _end_span(span, None, exc)
            raise
        _record(request, response, None, started, t0)
        if span is not None:
            _end_span(span, response, None)
        return response

    return send


def _wrap_asend(original: Callable[..., Any], targets: tuple[re.Pattern[str], ...]) -> Callable[..., Any]:
    async def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if _globals.client is None:
            return await original(client, request, *args, **kwargs)
        span = None
        if _globals.client.tracing:
            span = _start_span(_globals.client, request)
        else:
            _add_trace_header(request, targets)
        started, t0 = time.time(), time.perf_counter()
        try:
            response = await original(client, request, *args, **kwargs)
        except Exception as exc:
            _record(request, None, exc, started, t0)
            if span is not None:
                _end_span(span, None, exc)
            raise
        _record(request, response, None, started, t0)
        if span is not None:
            _end_span(span, response, None)
        return response

    return send


class HttpxIntegration(Integration):
    """Leave a breadcrumb for every request sent with an httpx client."""

    identifier: ClassVar[str] = "httpx"

    def __init__(self, *, trace_propagation_targets: Sequence[str | re.Pattern[str]] = ()) -> None:
        self.trace_targets = compile_targets(type(self).__name__, trace_propagation_targets)
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("httpx", self._patch)

    def _patch(self, module: ModuleType) -> None:
        targets = self.trace_targets
        self._patches.replace(module.Client, "send", lambda original: _wrap_send(original, targets))
        self._patches.replace(module.AsyncClient, "send", lambda original: _wrap_asend(original, targets))

    def uninstall(self) -> None:
        self._patches.undo()
