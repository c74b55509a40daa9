"""Outgoing HTTP breadcrumbs for ``http.client`` — and so for ``urllib.request``, urllib3 and requests.

Each request the app makes leaves a breadcrumb ``{type: http, category: httplib}`` with the method, the
URL without its password, query or fragment, the query string apart (``http.query``) with secret
parameters masked, the status code, the reason and the duration. No header is added to the request,
unless asked: ``StdlibIntegration(trace_propagation_targets=["^https://api.internal/"])`` adds a
``sentry-trace`` header carrying the unit of work's trace id to requests whose URL matches.
Requests made by tripwire itself (to its DSN, or from its own threads) leave none.

``http.client`` is patched only once the app imports it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, ClassVar

from .. import _deferred, _globals, _scope
from .._exceptions import ConfigurationError
from .._scope import _isolation
from .._serialize import FILTERED
from .._tracing import (
    active_var,
    child_span,
    new_span_id,
    new_trace_and_span_ids,
    outgoing_headers,
    random_bits,
    target_matches,
)
from .._types import Breadcrumb
from ._common import Integration, Patches, active_scrubber, add_crumb, in_sdk_thread

__all__ = ["StdlibIntegration", "http_breadcrumb"]


def http_breadcrumb(
    category: str,
    method: str,
    url: str,
    *,
    started: float,
    duration: float,
    status: int | None = None,
    reason: str | None = None,
    error: BaseException | None = None,
) -> Breadcrumb:
    """The breadcrumb of one outgoing request, scrubbed (shared by the http.client and httpx hooks)."""
    scrubber = active_scrubber()
    base = url.partition("#")[0]
    base, _, query = base.partition("?")
    data: dict[str, Any] = {"method": method.upper(), "url": _safely(scrubber.scrub_url, base)}
    if query:
        data["http.query"] = _safely(scrubber.scrub_query_string, query)
    if status is not None:
        data["status_code"] = status
    if reason:
        data["reason"] = reason
    data["duration_ms"] = round(duration * 1000.0, 3)
    level = "info"
    if error is not None:
        data["error"] = type(error).__name__
        level = "error"
    elif status is not None and status >= 500:
        level = "error"
    elif status is not None and status >= 400:
        level = "warning"
    return {"type": "http", "category": category, "level": level, "timestamp": started, "data": data}


def _safely(scrub: Callable[[str], str], text: str) -> str:
    try:
        return scrub(text)
    except Exception:
        return FILTERED  # nothing unscrubbed ever leaves


def compile_targets(owner: str, targets: Sequence[str | re.Pattern[str]]) -> tuple[re.Pattern[str], ...]:
    """Regular expressions for ``trace_propagation_targets``; ConfigurationError if one is invalid."""
    if isinstance(targets, str):
        targets = [targets]
    if not targets:
        return ()
    compiled = []
    for target in targets:
        try:
            compiled.append(target if isinstance(target, re.Pattern) else re.compile(target))
        except (re.error, TypeError) as exc:
            message = f"{owner}: invalid trace_propagation_targets {target!r}: {exc}"
            raise ConfigurationError(message) from None
    return tuple(compiled)


def trace_header(url: str, targets: tuple[re.Pattern[str], ...]) -> str | None:
    """The ``sentry-trace`` value for a request to ``url``, if it matches one of ``targets``.

    The trace id is the unit of work's (the one on its events), so the receiving service's events can
    be found from the sender's. No sampling flag is sent: tripwire does no tracing of its own.
    """
    if not any(target.search(url) for target in targets):
        return None
    return f"{_scope.trace_id()}-{os.urandom(8).hex()}"


def _is_sdk_request(host: str, port: int | None, path: str) -> bool:
    if in_sdk_thread():
        return True
    client = _globals.client
    dsn = client.options.dsn if client is not None else None
    if dsn is None or dsn.host != host:
        return False
    return (dsn.port is None or dsn.port == port) and path.startswith(f"{dsn.path}/api/")


def _connection_url(conn: Any, url: str) -> tuple[str, str, int | None, str]:
    """(full URL, host, port, path) of a request made on http.client connection ``conn``."""
    if url.startswith(("http://", "https://")):  # a request through a proxy carries the full URL
        parts = _deferred.urlsplit(url)
        return url, parts.hostname or "", parts.port, parts.path
    default_port = getattr(conn, "default_port", 80)
    scheme = "https" if default_port == 443 else "http"
    tunnel_host = getattr(conn, "_tunnel_host", None)
    host: str = tunnel_host or conn.host
    port: int | None = getattr(conn, "_tunnel_port", None) if tunnel_host else conn.port
    netloc = f"[{host}]" if ":" in host else host
    if port and port != default_port:
        netloc = f"{netloc}:{port}"
    if not url.startswith("/"):
        url = "/" + url
    return f"{scheme}://{netloc}{url}", host, port, url


class StdlibIntegration(Integration):
    """Leave a breadcrumb for every request made with ``http.client`` (see the module docstring)."""

    identifier: ClassVar[str] = "stdlib"

    def __init__(self, *, trace_propagation_targets: Sequence[str | re.Pattern[str]] = ()) -> None:
        self.trace_targets = compile_targets(type(self).__name__, trace_propagation_targets)
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("http.client", self._patch)

    def _patch(self, module: ModuleType) -> None:
        global _randbits
        # http.client imports random (through email.utils): binding it here costs no import.
        _randbits = random_bits()
        targets = self.trace_targets
        self._patches.replace(
            module.HTTPConnection, "putrequest", lambda original: _wrap_putrequest(original, targets)
        )
        self._patches.replace(module.HTTPConnection, "getresponse", _wrap_getresponse)

    def uninstall(self) -> None:
        self._patches.undo()


def _wrap_putrequest(
    original: Callable[..., Any], targets: tuple[re.Pattern[str], ...]
) -> Callable[..., Any]:
    def putrequest(conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        client = _globals.client
        if client is None or in_sdk_thread():  # tripwire's own requests (its sender) first: no work
            return original(conn, method, url, *args, **kwargs)
        started, t0 = time.time(), time.perf_counter()
        result = original(conn, method, url, *args, **kwargs)
        try:
            # The full URL is made once here (the breadcrumb and the span use it): requests
            # tripwire makes itself are left alone entirely.
            full_url, host, port, path = _connection_url(conn, url)
            if _is_sdk_request(host, port, path):
                return result
        except Exception:
            return result
        conn._tripwire_request = (method, full_url, started, t0)
        if client.tracing:
            if client.propagate_plain and active_var.get() is None:
                # Not sampled, the default propagation: one sentry-trace line, straight into
                # http.client's header buffer (what putheader ends with, without its two regular
                # expressions: the value is ours, hex digits).
                try:
                    conn._buffer.append(_unsampled_line(_isolation.get().unit_of_work()))
                except Exception:
                    pass
            else:
                _trace_request(client, conn, method, full_url)
        elif targets:
            try:
                header = trace_header(full_url, targets)
                if header is not None:
                    conn.putheader("sentry-trace", header)
            except Exception:
                pass
        return result

    return putrequest


def _put(conn: Any, name: str, value: str) -> None:
    # Straight into http.client's header buffer (what putheader ends with), without putheader's
    # validation (two regular expressions per header): these values are ours, made of hex digits
    # and percent-encoded text.
    try:
        buffer = conn._buffer
    except AttributeError:
        conn.putheader(name, value)
        return
    buffer.append(f"{name}: {value}".encode("latin-1"))


#: ``random.getrandbits``, bound when http.client is patched (see _patch).
_randbits: Callable[[int], int] | None = None


def _unsampled_line(holder: Any) -> bytes:
    """The ``sentry-trace`` header line of an outgoing request of a unit of work not sampled.

    It carries the unit of work's trace id (made now if it has none: one draw for both ids), a new
    span id, and "-0" when the unit of work decided not to sample (the receiver then samples
    nothing of this trace either). Hex digits through ``bytes.hex()``: formatting an int as hex
    (``f"{n:032x}"``) costs about five times as many instructions.
    """
    randbits = _randbits or random_bits()
    trace_id = holder.trace_id
    if trace_id is None:
        both = randbits(192).to_bytes(24, "big").hex()
        holder.trace_id = trace_id = both[:32]
        span_id = both[32:]
    else:
        span_id = randbits(64).to_bytes(8, "big").hex()
    if holder.sampling_decided:
        return f"sentry-trace: {trace_id}-{span_id}-0".encode()
    return f"sentry-trace: {trace_id}-{span_id}".encode()


def _trace_request(client: Any, conn: Any, method: str, full_url: str) -> None:
    """With tracing on: an ``http.client`` span for this request, and the propagation headers."""
    try:
        parent = active_var.get()
        if parent is None:
            # Not sampled: only the sentry-trace header, with the unit of work's trace id (and "-0"
            # when it decided not to sample, so the receiver samples nothing of it either).
            if client.trace_targets is None or target_matches(client, full_url):
                holder = _scope.isolation_holder()
                trace_id = holder.trace_id
                if trace_id is None:
                    trace_id, span_id = new_trace_and_span_ids()
                    holder.trace_id = trace_id
                else:
                    span_id = new_span_id()
                flag = "-0" if holder.sampling_decided else ""
                _put(conn, "sentry-trace", f"{trace_id}-{span_id}{flag}")
                if client.options.propagate_traceparent:
                    _put(conn, "traceparent", f"00-{trace_id}-{span_id}-00")
            return
        span = child_span(parent, "http.client", None)
        if span is not None:
            # The URL is scrubbed, and the description made, on the worker (_transaction_builder).
            span.data = {"http.request.method": method.upper(), "url": full_url}
            conn._tripwire_span = span
        if client.trace_targets is None or target_matches(client, full_url):
            # The sentry-trace header names the span of this very call.
            headers = outgoing_headers(
                span if span is not None else parent, "", w3c=client.options.propagate_traceparent
            )
            for name, value in headers.items():
                _put(conn, name, value)
    except Exception:
        pass


def _wrap_getresponse(original: Callable[..., Any]) -> Callable[..., Any]:
    def getresponse(conn: Any, *args: Any, **kwargs: Any) -> Any:
        info = conn.__dict__.pop("_tripwire_request", None)
        if info is None:
            return original(conn, *args, **kwargs)
        span = conn.__dict__.pop("_tripwire_span", None)
        try:
            response = original(conn, *args, **kwargs)
        except Exception as exc:
            _record(conn, info, None, None, exc)
            if span is not None:
                span.status = "internal_error"
                span.finish()
            raise
        _record(conn, info, response.status, response.reason, None, response)
        if span is not None:
            span.set_http_status(response.status)
            span.finish()
        return response

    return getresponse


def _record(
    conn: Any,
    info: tuple[str, str, float, float],
    status: int | None,
    reason: str | None,
    error: BaseException | None,
    response: Any = None,
) -> None:
    try:
        client = _globals.client
        if client is None:
            return
        method, full_url, started, t0 = info
        duration = time.perf_counter() - t0
        crumb = http_breadcrumb(
            "httplib",
            method,
            full_url,
            started=started,
            duration=duration,
            status=status,
            reason=reason,
            error=error,
        )
        # Sentry's names too (``httplib_request`` is the connection, as sentry-sdk passes it), so a
        # before_breadcrumb hook copied from a sentry-sdk app finds what it reads.
        hint: dict[str, Any] = {"httplib_connection": conn, "httplib_request": conn}
        if response is not None:
            hint["httplib_response"] = response
        add_crumb(client, crumb, hint)
    except Exception:
        pass
