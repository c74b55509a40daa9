"""One internal model for performance data, whatever protocol it came in.

A Sentry ``transaction`` item, a segment of span-v2 items (``span`` items of content type
``application/vnd.sentry.items.span.v2+json``) and an OpenTelemetry root span with its children
all become a :class:`Transaction` holding its :class:`Span` list. Strings are cut to fixed
lengths and the span count is capped, so one transaction's size is bounded.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..normalize import normalize_event_id, parse_timestamp, trim

#: Spans kept per transaction (Sentry's SDKs send at most 1000).
MAX_SPANS = 1000
MAX_NAME = 200
MAX_OP = 64
MAX_DESCRIPTION = 2000
MAX_RELEASE = 250
MAX_ENVIRONMENT = 64
#: Trace statuses that are not failures (Sentry's definition of the failure rate).
OK_STATUSES = frozenset({"ok", "cancelled", "unknown", "unset", ""})
_HEX = re.compile(r"^[0-9a-f]{1,32}$")
_HEX_DIGITS = "0123456789abcdef"


@dataclasses.dataclass
class Span:
    span_id: str
    parent_span_id: str | None
    op: str
    description: str
    start_timestamp: float
    timestamp: float
    status: str = "ok"

    @property
    def duration_ms(self) -> float:
        return max(0.0, (self.timestamp - self.start_timestamp) * 1000.0)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclasses.dataclass
class Transaction:
    """A transaction (a segment): its root span's fields and its child spans."""

    project_id: int
    event_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    op: str
    start_timestamp: float
    timestamp: float
    status: str
    http_status: int | None
    environment: str
    release: str
    spans: list[Span] = dataclasses.field(default_factory=list)
    #: Spans the SDK sent beyond :data:`MAX_SPANS` (dropped, and shown as such).
    dropped_spans: int = 0
    #: A performance issue (N+1 query) was found in it: its sample is kept as the issue's example.
    has_issue: bool = False

    @property
    def duration_ms(self) -> float:
        return max(0.0, (self.timestamp - self.start_timestamp) * 1000.0)

    @property
    def failed(self) -> bool:
        """Sentry's failure: a status other than ok/cancelled/unknown, or an HTTP status >= 500."""
        if self.http_status is not None and self.http_status >= 500:
            return True
        return self.status not in OK_STATUSES

    def root_span(self) -> Span:
        return Span(
            self.span_id,
            self.parent_span_id,
            self.op,
            self.name,
            self.start_timestamp,
            self.timestamp,
            self.status,
        )

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every value, ten times slower on the digest path.
        out = dict(self.__dict__)
        out["spans"] = [dict(s.__dict__) for s in self.spans]
        out["duration_ms"] = self.duration_ms
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transaction:
        spans = [Span(**s) for s in data.get("spans", [])]
        fields = {f.name for f in dataclasses.fields(cls)} - {"spans"}
        return cls(**{k: v for k, v in data.items() if k in fields}, spans=spans)


def _text(value: Any, limit: int) -> str:
    if type(value) is str and len(value) <= limit and "\x00" not in value:
        return value  # the common case, without a call
    if value is None:
        return ""
    return trim(value, limit)


def _span_id(value: Any) -> str | None:
    if type(value) is not str or not 0 < len(value) <= 32:
        return None
    if not value.strip(_HEX_DIGITS):  # only lower-case hex digits, as SDKs send: one C call
        return value
    text = value.strip().lower()
    return text if _HEX.match(text) else None


def _trace_id(value: Any) -> str | None:
    return normalize_event_id(value)


def _http_status(*values: Any) -> int | None:
    for v in values:
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)) or (isinstance(v, str) and v.strip().isdigit()):
            code = int(v)
            if 100 <= code <= 999:
                return code
    return None


def _times(start: Any, end: Any) -> tuple[float, float]:
    if type(start) is float and type(end) is float and start <= end and end - start < 1e9:
        return start, end  # what SDKs send: the fast path
    s, e = parse_timestamp(start), parse_timestamp(end)
    if e is None:
        raise ValueError("span without an end timestamp")
    if s is None or s > e:
        s = e
    return s, e


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def from_transaction(data: Any, project_id: int, *, event_id: str | None = None) -> Transaction:
    """A Sentry ``transaction`` event payload; raises ValueError if it is not one."""
    if not isinstance(data, dict):
        raise ValueError("transaction payload must be a JSON object")
    contexts = _dict(data.get("contexts"))
    trace = _dict(contexts.get("trace"))
    trace_id = _trace_id(trace.get("trace_id"))
    span_id = _span_id(trace.get("span_id"))
    if trace_id is None or span_id is None:
        raise ValueError("transaction without contexts.trace.trace_id and span_id")
    start, end = _times(data.get("start_timestamp"), data.get("timestamp"))
    response = _dict(contexts.get("response"))
    tags = _dict(data.get("tags"))
    trace_data = _dict(trace.get("data"))
    tx = Transaction(
        project_id=project_id,
        event_id=normalize_event_id(data.get("event_id")) or event_id or trace_id,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=_span_id(trace.get("parent_span_id")),
        name=_text(data.get("transaction") or "<unlabeled transaction>", MAX_NAME),
        op=_text(trace.get("op") or "default", MAX_OP),
        start_timestamp=start,
        timestamp=end,
        status=_text(trace.get("status") or "ok", 32).lower(),
        http_status=_http_status(
            response.get("status_code"),
            trace_data.get("http.response.status_code"),
            tags.get("http.status_code"),
        ),
        environment=_text(data.get("environment") or "production", MAX_ENVIRONMENT),
        release=_text(data.get("release") or "", MAX_RELEASE),
    )
    raw_spans = data["spans"] if isinstance(data.get("spans"), list) else []
    spans = tx.spans
    for raw in raw_spans:
        if len(spans) >= MAX_SPANS:
            tx.dropped_spans += 1
            continue
        span = _sentry_span(raw)
        if span is not None:
            spans.append(span)
    return tx


def _sentry_span(raw: Any) -> Span | None:
    # The digest runs this for every span it receives. What SDKs send (lower-case hex ids, float
    # times, short strings) is checked inline; anything else takes the general helpers, with the
    # same result.
    if not isinstance(raw, dict):
        return None
    span_id = raw.get("span_id")
    if type(span_id) is not str or not 0 < len(span_id) <= 32 or span_id.strip(_HEX_DIGITS):
        span_id = _span_id(span_id)
        if span_id is None:
            return None
    parent = raw.get("parent_span_id")
    if parent is not None and (
        type(parent) is not str or not 0 < len(parent) <= 32 or parent.strip(_HEX_DIGITS)
    ):
        parent = _span_id(parent)
    start, end = raw.get("start_timestamp"), raw.get("timestamp")
    if not (type(start) is float and type(end) is float and start <= end and end - start < 1e9):
        try:
            start, end = _times(start, end)
        except ValueError:
            return None
    op = raw.get("op")
    if type(op) is not str or not op or len(op) > MAX_OP or "\x00" in op:
        op = _text(op or "default", MAX_OP)
    description = raw.get("description")
    if type(description) is not str or len(description) > MAX_DESCRIPTION or "\x00" in description:
        description = _text(description or "", MAX_DESCRIPTION)
    status = raw.get("status")
    # Positional: keyword arguments cost a dataclass __init__ twice as much.
    return Span(
        span_id,
        parent,
        op,
        description,
        start,
        end,
        "ok" if not status or status == "ok" else _text(status, 32).lower(),
    )


# -- span v2 -------------------------------------------------------------------------------------


def _attr(attributes: Any, name: str) -> Any:
    """An attribute's value: v2 wraps each one as ``{"type": ..., "value": ...}``."""
    if not isinstance(attributes, dict):
        return None
    value = attributes.get(name)
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def span_v2_items(payload: Any) -> list[dict[str, Any]]:
    """The spans of one span-v2 item: ``{"items": [...]}`` (or a single span object)."""
    if isinstance(payload, dict) and isinstance(payload.get("items"), list):
        return [s for s in payload["items"] if isinstance(s, dict)]
    if isinstance(payload, dict) and "span_id" in payload:
        return [payload]
    raise ValueError("span item holds no spans")


def from_spans_v2(
    spans: list[dict[str, Any]], project_id: int, *, event_id: str | None = None
) -> tuple[list[Transaction], int]:
    """Group span-v2 spans by segment: ``(transactions, spans not stored)``: spans without a valid
    span id, and spans whose segment span is missing.

    The segment span (``is_segment``, or the one whose id is the ``sentry.segment.id`` of the
    others) is the transaction; its ``sentry.segment.name`` attribute (else its name) names it.
    """
    by_segment: dict[str, list[dict[str, Any]]] = {}
    segments: dict[str, dict[str, Any]] = {}
    orphans = 0
    for s in spans:
        span_id = _span_id(s.get("span_id"))
        if span_id is None:
            orphans += 1
            continue
        attrs = s.get("attributes")
        segment_id = _span_id(_attr(attrs, "sentry.segment.id") or s.get("segment_id"))
        if s.get("is_segment") is True or (segment_id is None and not s.get("parent_span_id")):
            segments[span_id] = s
            segment_id = span_id
        by_segment.setdefault(segment_id or "", []).append(s)
    out: list[Transaction] = []
    for segment_id, members in by_segment.items():
        root = segments.get(segment_id)
        if root is None:
            orphans += len(members)
            continue
        attrs = root.get("attributes")
        trace_id = _trace_id(root.get("trace_id"))
        if trace_id is None:
            orphans += len(members)
            continue
        start, end = _times(root.get("start_timestamp"), root.get("end_timestamp") or root.get("timestamp"))
        status = root.get("status")
        tx = Transaction(
            project_id=project_id,
            event_id=event_id or segment_id.rjust(32, "0"),
            trace_id=trace_id,
            span_id=segment_id,
            parent_span_id=_span_id(root.get("parent_span_id")),
            name=_text(_attr(attrs, "sentry.segment.name") or root.get("name") or "<unlabeled>", MAX_NAME),
            op=_text(_attr(attrs, "sentry.op") or root.get("op") or "default", MAX_OP),
            start_timestamp=start,
            timestamp=end,
            status=_text(status if isinstance(status, str) else "ok", 32).lower(),
            http_status=_http_status(
                _attr(attrs, "http.response.status_code"), _attr(attrs, "http.status_code")
            ),
            environment=_text(_attr(attrs, "sentry.environment") or "production", MAX_ENVIRONMENT),
            release=_text(_attr(attrs, "sentry.release") or "", MAX_RELEASE),
        )
        for s in members:
            if s is root:
                continue
            if len(tx.spans) >= MAX_SPANS:
                tx.dropped_spans += 1
                continue
            try:
                raw_end = s.get("end_timestamp") or s.get("timestamp")
                s_start, s_end = _times(s.get("start_timestamp"), raw_end)
            except ValueError:
                continue
            s_attrs = s.get("attributes")
            tx.spans.append(
                Span(
                    span_id=_span_id(s.get("span_id")) or "",
                    parent_span_id=_span_id(s.get("parent_span_id")),
                    op=_text(_attr(s_attrs, "sentry.op") or s.get("op") or "default", MAX_OP),
                    description=_text(
                        _attr(s_attrs, "sentry.description") or s.get("name") or "", MAX_DESCRIPTION
                    ),
                    start_timestamp=s_start,
                    timestamp=s_end,
                    status=_text(s.get("status") if isinstance(s.get("status"), str) else "ok", 32),
                )
            )
        out.append(tx)
    return out, orphans


#: Transactions that ended longer ago than this when they arrived are dropped (``too_old``).
MAX_AGE = 30 * 86400.0
#: A transaction ending later than this after its arrival is shifted back (a client clock ahead).
MAX_FUTURE_SKEW = 60.0


def fit_clock(tx: Transaction, received_at: float) -> bool:
    """Shift a transaction from a client clock that runs ahead; False if it is too old to keep.

    The bound keeps every stored row within a known window of days (on PostgreSQL each day is
    a partition: a client cannot make the collector create tables for any date it likes).
    """
    if tx.timestamp < received_at - MAX_AGE:
        return False
    drift = tx.timestamp - received_at
    if drift > MAX_FUTURE_SKEW:
        tx.start_timestamp -= drift
        tx.timestamp -= drift
        for span in tx.spans:
            span.start_timestamp -= drift
            span.timestamp -= drift
    return True
