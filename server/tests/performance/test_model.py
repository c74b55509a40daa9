"""Sentry transactions and span-v2 segments become one internal model, bounded and validated."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tripwire_server.performance import model

from .payloads import transaction


def test_a_sentry_transaction_becomes_a_transaction_with_its_spans() -> None:
    """Name, op, status, release, environment, HTTP status and spans come from the payload."""
    payload = transaction(
        "/checkout", 120, spans=[("db", "SELECT 1", 1, 5)], release="r@1", environment="stage"
    )
    payload["contexts"]["response"] = {"status_code": 503}
    tx = model.from_transaction(payload, 7)
    assert (tx.name, tx.op, tx.release, tx.environment, tx.http_status) == (
        "/checkout",
        "http.server",
        "r@1",
        "stage",
        503,
    )
    assert tx.failed  # HTTP 503 is a failure even with status ok
    assert abs(tx.duration_ms - 120) < 0.01 and len(tx.spans) == 1 and tx.spans[0].description == "SELECT 1"


def test_a_transaction_without_a_trace_context_is_invalid() -> None:
    """No contexts.trace.trace_id: ValueError (the digest counts it as invalid)."""
    payload = transaction("/x", 1)
    del payload["contexts"]["trace"]["trace_id"]
    with pytest.raises(ValueError):
        model.from_transaction(payload, 1)


def test_spans_over_the_cap_are_dropped_and_counted() -> None:
    """A transaction keeps at most MAX_SPANS spans; the rest are counted in dropped_spans."""
    payload = transaction("/x", 10, spans=[("db", "q", 0, 1)] * (model.MAX_SPANS + 3))
    tx = model.from_transaction(payload, 1)
    assert len(tx.spans) == model.MAX_SPANS and tx.dropped_spans == 3


def _v2(
    span_id: str, parent: str | None, *, segment: bool, name: str, attrs: dict[str, object]
) -> dict[str, object]:
    return {
        "trace_id": "ab" * 16,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "status": "ok",
        "is_segment": segment,
        "start_timestamp": 1000.0,
        "end_timestamp": 1000.25,
        "attributes": {k: {"type": "string", "value": v} for k, v in attrs.items()},
    }


def test_a_span_v2_segment_is_named_by_its_segment_name_attribute() -> None:
    """sentry.segment.name names the transaction; sentry.op gives the op; children are its spans."""
    root = _v2(
        "a" * 16,
        None,
        segment=True,
        name="GET",
        attrs={"sentry.segment.name": "/cart", "sentry.op": "pageload", "sentry.release": "web@2"},
    )
    child = _v2(
        "b" * 16,
        "a" * 16,
        segment=False,
        name="fetch /api",
        attrs={"sentry.segment.id": "a" * 16, "sentry.op": "http.client"},
    )
    (tx,), orphans = model.from_spans_v2([root, child], 3)
    assert orphans == 0
    assert (tx.name, tx.op, tx.release, tx.duration_ms) == ("/cart", "pageload", "web@2", 250.0)
    assert [(s.op, s.description) for s in tx.spans] == [("http.client", "fetch /api")]


def test_span_v2_spans_without_their_segment_are_orphans() -> None:
    """Children whose segment span is not in the envelope are counted, not stored."""
    child = _v2("b" * 16, "a" * 16, segment=False, name="x", attrs={"sentry.segment.id": "a" * 16})
    assert model.from_spans_v2([child], 3) == ([], 1)


def test_a_client_clock_ahead_is_shifted_and_old_transactions_are_refused() -> None:
    """A transaction from 10 min in the future is moved to arrival time; one 40 days old is refused."""
    tx = model.from_transaction(transaction("/x", 100, end=10_000 + 600, spans=[("db", "q", 0, 1)]), 1)
    assert model.fit_clock(tx, 10_000.0) and tx.timestamp == 10_000.0 and tx.spans[0].timestamp < 10_000.0
    old = model.from_transaction(transaction("/x", 100, end=10_000 - 40 * 86400), 1)
    assert not model.fit_clock(old, 10_000.0)


def _reference_span(raw: Any) -> model.Span | None:
    """A Sentry span through the general helpers alone (the definition the fast path keeps)."""
    if not isinstance(raw, dict):
        return None
    span_id = model._span_id(raw.get("span_id"))
    if span_id is None:
        return None
    try:
        start, end = model._times(raw.get("start_timestamp"), raw.get("timestamp"))
    except ValueError:
        return None
    return model.Span(
        span_id=span_id,
        parent_span_id=model._span_id(raw.get("parent_span_id")),
        op=model._text(raw.get("op") or "default", model.MAX_OP),
        description=model._text(raw.get("description") or "", model.MAX_DESCRIPTION),
        start_timestamp=start,
        timestamp=end,
        status=model._text(raw.get("status") or "ok", 32).lower(),
    )


def test_spans_parse_as_the_general_helpers_define_whatever_their_shape() -> None:
    """Odd ids, times, ops, descriptions and statuses give what the plain helpers give."""
    values: dict[str, list[Any]] = {
        "span_id": ["a1b2c3d4e5f60718", "A1B2C3D4E5F60718", " a1b2 ", "", "x" * 40, "zz", 7, None],
        "parent_span_id": ["00aa00aa00aa00aa", "00AA", "", " ", None, 12, "g" * 16],
        "start_timestamp": [1.5, 2, "2026-01-01T00:00:00Z", None, 3.5, float("nan")],
        "timestamp": [2.5, 3, "2026-01-01T00:00:01Z", None, 1.0, 1e10],
        "op": ["db.sql.query", "", None, "o" * 80, "db\x00x", 5],
        "description": ["SELECT 1", "", None, "d" * 2100, "a\x00b", 3.0],
        "status": ["ok", "OK", None, "", "internal_error", 5, "Cancelled"],
    }
    rng = random.Random(3)
    for _ in range(3000):
        raw = {k: rng.choice(v) for k, v in values.items() if rng.random() < 0.95}
        assert model._sentry_span(raw) == _reference_span(raw), raw
    assert model._sentry_span(["not", "a", "span"]) is None
