"""OTLP/HTTP trace ingest: ``POST /v1/traces`` and Sentry's ``/api/{project_id}/integration/otlp/v1/traces``.

An app instrumented with any OpenTelemetry SDK exports here (protobuf or JSON, optionally gzip),
with the project key in ``X-Sentry-Auth: Sentry sentry_key=KEY`` as Sentry documents it (or
``?sentry_key=``). The spans are decoded and grouped into transactions at the door
(:mod:`.performance.otlp`), so a malformed export is refused with 400 at once; what is accepted
is committed to the durable ingest queue as an envelope of ``transaction`` items before the 200,
like any Sentry envelope, and digested the same way.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _json
from .budget import BudgetExhausted, Reservation
from .ingest import Rejection, _auth_key, _check_project, _Request, _send_response, header_safe, read_body
from .intake import IntakeUnavailable
from .performance import otlp
from .store.base import IntakeRow

if TYPE_CHECKING:
    from .app import CollectorState

_PROTOBUF = "application/x-protobuf"
#: Decompressed bytes of one export: parsed whole in memory (protobuf), so capped well below the
#: envelope limit; the OTel SDK's batches of 512 spans are far smaller.
MAX_EXPORT_SIZE = 20 * 1024 * 1024


def _decode(body: bytes, content_type: str, project_id: int) -> tuple[bytes, int]:
    """The envelope of the export's transactions; raises OTLPError for a bad body."""
    if content_type.startswith("application/json"):
        try:
            data = _json.loads(body)
        except ValueError as exc:
            raise otlp.OTLPError(f"not JSON: {exc}") from None
        resources = otlp.plain_from_json(data)
    else:
        resources = otlp.plain_from_protobuf(body)
    txs = otlp.transactions(resources, project_id)
    lines = [b"{}"]
    for tx in txs:
        payload = _json.dumps(otlp.to_sentry_transaction(tx))
        lines.append(json.dumps({"type": "transaction", "length": len(payload)}).encode())
        lines.append(payload)
    return b"\n".join(lines) + b"\n", len(txs)


async def _export(request: _Request, state: CollectorState, reservation: Reservation) -> tuple[int, int]:
    limits = state.config.limits
    key = _auth_key(request)
    if not key:
        raise Rejection(401, "missing authentication: send X-Sentry-Auth: Sentry sentry_key=KEY")
    project = await state.projects.get(key)
    path_id = request.path_params.get("project_id")
    if path_id is None:
        if project is None:
            raise Rejection(403, "unknown DSN public key")
    else:
        project = _check_project(project, int(path_id))
    assert project is not None
    content_type = request.headers.get("content-type", _PROTOBUF).split(";")[0].strip().lower()
    if content_type not in (_PROTOBUF, "application/json"):
        raise Rejection(
            415, f"unsupported Content-Type {content_type!r}: use {_PROTOBUF} or application/json"
        )
    body = await read_body(
        request,
        reservation,
        max_compressed=limits.max_envelope_compressed,
        max_size=min(limits.max_envelope_size, MAX_EXPORT_SIZE),
    )
    try:
        envelope, count = await anyio.to_thread.run_sync(_decode, body, content_type, project.id)
    except otlp.OTLPError as exc:
        raise Rejection(400, f"malformed OTLP export: {exc}") from None
    if count == 0:
        return project.id, 0
    quota = (
        project.quota_per_minute if project.quota_per_minute is not None else state.config.quota_per_minute
    )
    retry = state.quotas.take(project.id, quota, count, time.time())
    if retry is not None:
        state.writer.count(project.id, "transaction", "rate_limited", count)
        raise Rejection(
            429, f"project quota of {quota} events per minute exceeded", {"Retry-After": str(retry)}
        )
    if state.writer.backlog + state.writer.in_flight >= state.config.max_backlog:
        state.writer.count(project.id, "envelope", "backlog_full")
        raise Rejection(429, "the collector is behind on digesting; retry later", {"Retry-After": "10"})
    try:
        await state.writer.submit(
            IntakeRow(project.id, time.time(), "envelope", envelope, request.client_host)
        )
    except IntakeUnavailable as exc:
        raise Rejection(503, f"could not store the export: {exc}", {"Retry-After": "5"}) from None
    return project.id, count


class _OTLPTraces:
    """The ASGI app of the OTLP trace routes (a class: Starlette calls it as raw ASGI)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _otlp_traces(scope, receive, send)


async def _otlp_traces(scope: Scope, receive: Receive, send: Send) -> None:
    request = _Request(scope, receive)
    state: CollectorState = request.app.state.collector
    wants_json = request.headers.get("content-type", "").startswith("application/json")
    # The decompressed body counts against the collector's in-flight budget, like an envelope.
    reservation = state.budget.reservation()
    try:
        await _export(request, state, reservation)
    except BudgetExhausted as exc:
        await _send_response(send, 503, str(exc).encode(), {"Retry-After": "2"}, "text/plain")
        return
    except Rejection as exc:
        headers = {**exc.headers, "X-Sentry-Error": header_safe(exc.message)}
        if not request.body_done:
            # The rest of the body will not be read: close rather than parse it as a request.
            headers["Connection"] = "close"
        if wants_json:
            body: Any = json.dumps({"code": exc.status, "message": exc.message}).encode()
        else:
            body = exc.message.encode()
        await _send_response(
            send, exc.status, body, headers, "application/json" if wants_json else "text/plain"
        )
        return
    finally:
        reservation.release()
    # An empty ExportTraceServiceResponse: full success.
    if wants_json:
        await _send_response(send, 200, b"{}", {}, "application/json")
    else:
        await _send_response(send, 200, b"", {}, _PROTOBUF)


otlp_traces = _OTLPTraces()


def routes() -> list[Route]:
    """``/v1/traces`` (the OTLP default path) and Sentry's project-scoped OTLP path."""
    return [
        Route("/v1/traces", otlp_traces, methods=["POST"]),
        Route("/api/{project_id:id}/integration/otlp/v1/traces", otlp_traces, methods=["POST"]),
        Route("/api/{project_id:id}/integration/otlp/v1/traces/", otlp_traces, methods=["POST"]),
    ]
