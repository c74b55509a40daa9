"""The propagation headers as pure functions: what parses, what is ignored, what round-trips."""

from __future__ import annotations

import pytest

from tripwire._propagation import (
    TraceParent,
    format_baggage,
    format_sentry_trace,
    format_traceparent,
    parse_baggage,
    parse_sentry_trace,
    parse_traceparent,
)

TRACE, SPAN = "a" * 32, "b" * 16


def test_sentry_trace_round_trips_with_and_without_a_decision() -> None:
    """sentry-trace carries the trace, the span and the decision (absent: the receiver decides)."""
    for sampled in (True, False, None):
        assert parse_sentry_trace(format_sentry_trace(TRACE, SPAN, sampled)) == TraceParent(
            TRACE, SPAN, sampled
        )


def test_traceparent_round_trips_and_reads_the_sampled_flag() -> None:
    """W3C traceparent parses to the same trace, span and sampled bit it was made from."""
    assert parse_traceparent(format_traceparent(TRACE, SPAN, True)) == TraceParent(TRACE, SPAN, True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-02") == TraceParent(TRACE, SPAN, False)


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "0" * 32 + "-" + SPAN, TRACE.upper() + "-" + SPAN, TRACE + "-" + SPAN + "-2", "x" * 500],
)
def test_malformed_sentry_trace_is_ignored(value: str) -> None:
    """A malformed, all-zero or oversized sentry-trace is ignored, never raised on."""
    assert parse_sentry_trace(value) is None


@pytest.mark.parametrize(
    "value",
    ["ff-" + TRACE + "-" + SPAN + "-01", f"00-{'0' * 32}-{SPAN}-01", f"00-{TRACE}-{'0' * 16}-01", "00-x"],
)
def test_malformed_traceparent_is_ignored(value: str) -> None:
    """An invalid version, an all-zero id or a malformed traceparent is ignored."""
    assert parse_traceparent(value) is None


def test_baggage_keeps_other_vendors_and_round_trips_encoded_values() -> None:
    """Sentry members are read (percent-decoded, properties dropped); other members pass through."""
    dsc = {"trace_id": TRACE, "transaction": "GET /items/{id} ,;", "release": "shop@1.4+2"}
    value = format_baggage(dsc, "other=1,vendor=x")
    assert parse_baggage(value) == (dsc, "other=1,vendor=x")
    assert parse_baggage("sentry-sample_rate=0.5;prop=1, junk ,=x") == ({"sample_rate": "0.5"}, "")
    assert parse_baggage("a=" + "x" * 9000) == ({}, "")  # over the W3C limit: not parsed
