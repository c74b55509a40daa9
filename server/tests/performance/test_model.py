"""Sentry transactions and span-v2 segments become one internal model, bounded and validated."""

from __future__ import annotations

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
