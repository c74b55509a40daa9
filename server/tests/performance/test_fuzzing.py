"""Hostile performance data: random OTLP bodies, transactions and span items never raise anything
but the refusal the endpoint answers 400 for (or the ValueError the digest counts as invalid)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.figures import record
from tripwire_server.performance import model, nplusone, otlp

# A few hundred examples each: over 5 s on a busy 2-core machine.
pytestmark = [pytest.mark.reliability, pytest.mark.slow]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=40,
)
_TRIED = {"otlp": 0, "transaction": 0}


def _otlp_like(value: Any) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": value},
                "scopeSpans": [
                    {
                        "spans": [
                            value,
                            {
                                "traceId": value,
                                "spanId": "ab" * 8,
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "attributes": value,
                            },
                        ]
                    }
                ],
            }
        ]
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | json_values.map(lambda v: json.dumps(_otlp_like(v)).encode()))
def test_any_otlp_body_is_decoded_or_refused_with_an_otlp_error(body: bytes) -> None:
    """Random protobuf bytes and OTLP-shaped JSON with hostile values: OTLPError at worst."""
    _TRIED["otlp"] += 1
    try:
        try:
            resources = otlp.plain_from_json(json.loads(body))
        except ValueError:
            resources = otlp.plain_from_protobuf(body)
        for tx in otlp.transactions(resources, 1):
            assert tx.timestamp >= tx.start_timestamp
    except otlp.OTLPError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, json_values)
def test_any_transaction_or_span_item_is_mapped_or_refused_with_a_value_error(a: Any, b: Any) -> None:
    """Hostile transaction payloads and span-v2 items: a Transaction (bounded) or ValueError."""
    _TRIED["transaction"] += 1
    payload = {
        "contexts": {"trace": {"trace_id": "a" * 32, "span_id": "b" * 16, "op": a}},
        "transaction": b,
        "start_timestamp": a,
        "timestamp": 5.0,
        "spans": [a, b, {"span_id": "c" * 16, "description": a, "timestamp": b}],
    }
    for data in (a, payload):
        try:
            tx = model.from_transaction(data, 1)
            assert len(tx.name) <= model.MAX_NAME and len(tx.spans) <= model.MAX_SPANS
            nplusone.detect(tx)
        except ValueError:
            pass
    try:
        model.from_spans_v2(model.span_v2_items(a), 1)
    except ValueError:
        pass


def test_zz_record_the_inputs_tried() -> None:
    """The figures of the two fuzzing runs above (inputs tried, none crashed)."""
    record(
        "fuzzing", "OTLP trace bodies tried (random bytes, hostile JSON): decoded or refused", _TRIED["otlp"]
    )
    record("fuzzing", "transaction and span-v2 payloads tried: mapped or refused", _TRIED["transaction"])
