"""OpenTelemetry traces (OTLP/HTTP, protobuf or JSON) -> :class:`~.model.Transaction` records.

Both encodings are first read into the same plain form (ids as hex, times in seconds); protobuf
is decoded with the ``opentelemetry-proto`` package. Spans are grouped per export request: a span
whose parent is not in the request (or that has none) is a segment, i.e. a transaction, named by
the span's name; its descendants in the request are its spans. The op comes from the span kind
and the semantic-convention attributes (``http.*``, ``db.*``, ``messaging.*``, ``rpc.*``).
"""

from __future__ import annotations

import uuid
from typing import Any

from ..normalize import trim
from .model import (
    MAX_DESCRIPTION,
    MAX_ENVIRONMENT,
    MAX_NAME,
    MAX_OP,
    MAX_RELEASE,
    MAX_SPANS,
    Span,
    Transaction,
)

#: Spans one export request may carry (more is refused with 413 by the endpoint).
MAX_SPANS_PER_REQUEST = 10_000

_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_SERVER, _CLIENT, _PRODUCER, _CONSUMER = 2, 3, 4, 5


class OTLPError(ValueError):
    """The request is not a valid OTLP trace export."""


def _any_value(value: Any) -> Any:
    """An OTLP JSON ``AnyValue`` as a plain value."""
    if not isinstance(value, dict):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return None
    if "arrayValue" in value:
        values = (value["arrayValue"] or {}).get("values") or []
        return [_any_value(v) for v in values[:100]]
    return None


def _attrs_json(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for kv in items[:1000]:
            if isinstance(kv, dict) and isinstance(kv.get("key"), str):
                out[kv["key"]] = _any_value(kv.get("value"))
    return out


def _nanos(value: Any) -> float:
    try:
        return int(value) / 1e9
    except (TypeError, ValueError):
        raise OTLPError(f"bad time {value!r}") from None


def _hex(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def plain_from_json(data: Any) -> list[dict[str, Any]]:
    """``resourceSpans`` of OTLP/JSON -> ``[{resource: {...}, spans: [{...}]}]``."""
    if not isinstance(data, dict):
        raise OTLPError("an OTLP/JSON body is a JSON object with resourceSpans")
    out = []
    for rs in data.get("resourceSpans") or []:
        if not isinstance(rs, dict):
            continue
        resource = _attrs_json((rs.get("resource") or {}).get("attributes"))
        spans = []
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            for s in (ss or {}).get("spans") or []:
                if not isinstance(s, dict):
                    continue
                kind = s.get("kind", 0)
                status = s.get("status") or {}
                code = status.get("code", 0) if isinstance(status, dict) else 0
                spans.append(
                    {
                        "trace_id": _hex(s.get("traceId")),
                        "span_id": _hex(s.get("spanId")),
                        "parent_span_id": _hex(s.get("parentSpanId")) or None,
                        "name": s.get("name") or "",
                        "kind": _KINDS.get(kind, 0) if isinstance(kind, str) else int(kind or 0),
                        "start": _nanos(s.get("startTimeUnixNano")),
                        "end": _nanos(s.get("endTimeUnixNano")),
                        "attributes": _attrs_json(s.get("attributes")),
                        "error": code in (2, "STATUS_CODE_ERROR"),
                    }
                )
        out.append({"resource": resource, "spans": spans})
    return out


def _any_value_pb(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_value_pb(v) for v in list(value.array_value.values)[:100]]
    if which in ("kvlist_value", "bytes_value"):
        return None
    return getattr(value, which)


def plain_from_protobuf(body: bytes) -> list[dict[str, Any]]:
    """An ``ExportTraceServiceRequest`` -> the plain form of :func:`plain_from_json`."""
    try:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:  # pragma: no cover - the server extra installs it
        raise OTLPError("OTLP protobuf needs the opentelemetry-proto package (the server extra)") from None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OTLPError(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: _any_value_pb(kv.value) for kv in list(rs.resource.attributes)[:1000]}
        spans = []
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex() or None,
                        "name": s.name,
                        "kind": int(s.kind),
                        "start": s.start_time_unix_nano / 1e9,
                        "end": s.end_time_unix_nano / 1e9,
                        "attributes": {kv.key: _any_value_pb(kv.value) for kv in list(s.attributes)[:1000]},
                        "error": int(s.status.code) == 2,
                    }
                )
        out.append({"resource": resource, "spans": spans})
    return out


def span_op(kind: int, attrs: dict[str, Any]) -> str:
    """Sentry's op for an OTel span: from ``sentry.op``, else its attributes and kind."""
    explicit = attrs.get("sentry.op")
    if isinstance(explicit, str) and explicit:
        return explicit
    if attrs.get("db.system") or attrs.get("db.system.name"):
        return "db"
    if attrs.get("http.request.method") or attrs.get("http.method"):
        return "http.client" if kind == _CLIENT else "http.server"
    if attrs.get("messaging.system"):
        return "queue.publish" if kind == _PRODUCER else "queue.process"
    if attrs.get("rpc.system"):
        return "rpc.client" if kind == _CLIENT else "rpc.server"
    return {_SERVER: "http.server", _CLIENT: "http.client", _CONSUMER: "queue.process"}.get(kind, "default")


def _description(span: dict[str, Any]) -> str:
    attrs = span["attributes"]
    for key in ("db.query.text", "db.statement"):
        if isinstance(attrs.get(key), str) and attrs[key]:
            return str(attrs[key])
    return str(span["name"])


def _status_code(attrs: dict[str, Any]) -> int | None:
    for key in ("http.response.status_code", "http.status_code"):
        value = attrs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999:
            return value
    return None


def transactions(resources: list[dict[str, Any]], project_id: int) -> list[Transaction]:
    """Group the plain spans of one export request into transactions (see the module docstring)."""
    out: list[Transaction] = []
    total = sum(len(r["spans"]) for r in resources)
    if total > MAX_SPANS_PER_REQUEST:
        raise OTLPError(f"{total} spans in one request: at most {MAX_SPANS_PER_REQUEST}")
    for resource in resources:
        res = resource["resource"]
        environment = (
            res.get("deployment.environment.name") or res.get("deployment.environment") or "production"
        )
        release = res.get("service.version") or ""
        spans = [s for s in resource["spans"] if len(s["trace_id"]) == 32 and s["span_id"]]
        by_id = {(s["trace_id"], s["span_id"]): s for s in spans}
        children: dict[tuple[str, str], list[dict[str, Any]]] = {}
        roots = []
        for s in spans:
            parent = (s["trace_id"], s["parent_span_id"] or "")
            if s["parent_span_id"] and parent in by_id and parent != (s["trace_id"], s["span_id"]):
                children.setdefault(parent, []).append(s)
            else:
                roots.append(s)
        for root in roots:
            attrs = root["attributes"]
            tx = Transaction(
                project_id=project_id,
                event_id=uuid.uuid4().hex,
                trace_id=root["trace_id"],
                span_id=root["span_id"][:16],
                parent_span_id=(root["parent_span_id"] or None) and root["parent_span_id"][:16],
                name=trim(root["name"] or "<unlabeled span>", MAX_NAME),
                op=trim(span_op(root["kind"], attrs), MAX_OP),
                start_timestamp=min(root["start"], root["end"]),
                timestamp=root["end"],
                status="internal_error" if root["error"] else "ok",
                http_status=_status_code(attrs),
                environment=trim(environment, MAX_ENVIRONMENT),
                release=trim(release, MAX_RELEASE),
            )
            stack = list(children.get((root["trace_id"], root["span_id"]), []))
            seen = {id(root)}
            while stack:
                s = stack.pop()
                if id(s) in seen:
                    continue  # a cycle of parent ids
                seen.add(id(s))
                if len(tx.spans) >= MAX_SPANS:
                    tx.dropped_spans += 1
                else:
                    tx.spans.append(
                        Span(
                            span_id=s["span_id"][:16],
                            parent_span_id=s["parent_span_id"][:16] if s["parent_span_id"] else None,
                            op=trim(span_op(s["kind"], s["attributes"]), MAX_OP),
                            description=trim(_description(s), MAX_DESCRIPTION),
                            start_timestamp=min(s["start"], s["end"]),
                            timestamp=s["end"],
                            status="internal_error" if s["error"] else "ok",
                        )
                    )
                stack.extend(children.get((s["trace_id"], s["span_id"]), []))
            out.append(tx)
    return out


def to_sentry_transaction(tx: Transaction) -> dict[str, Any]:
    """The Sentry ``transaction`` payload of a transaction (how OTLP data enters the ingest queue)."""
    return {
        "type": "transaction",
        "event_id": tx.event_id,
        "transaction": tx.name,
        "start_timestamp": tx.start_timestamp,
        "timestamp": tx.timestamp,
        "environment": tx.environment,
        "release": tx.release or None,
        "platform": "otel",
        "contexts": {
            "trace": {
                "trace_id": tx.trace_id,
                "span_id": tx.span_id,
                "parent_span_id": tx.parent_span_id,
                "op": tx.op,
                "status": tx.status,
                "data": {"http.response.status_code": tx.http_status} if tx.http_status else {},
            }
        },
        "spans": [
            {
                "span_id": s.span_id,
                "parent_span_id": s.parent_span_id,
                "op": s.op,
                "description": s.description,
                "start_timestamp": s.start_timestamp,
                "timestamp": s.timestamp,
                "status": s.status,
            }
            for s in tx.spans
        ],
    }
