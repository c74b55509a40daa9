"""Transactions on the wire: sentry-sdk's Envelope parser reads them, and Sentry's own normalizer
(sentry-relay's StoreNormalizer) accepts them without errors."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
from sentry_relay.processing import StoreNormalizer
from sentry_sdk.envelope import Envelope

import tripwire
from tests.support.sink import Sink

from ..asgi.servers import serve
from .apps import APPS
from .conftest import Upstream


def _transaction_envelopes(sink: Sink) -> list[Envelope]:
    envelopes = [Envelope.deserialize(gzip.decompress(r.body)) for r in sink.requests]
    return [e for e in envelopes if any(item.type == "transaction" for item in e.items)]


def _normalize(event: dict[str, Any]) -> dict[str, Any]:
    normalized: dict[str, Any] = StoreNormalizer(project_id=1).normalize_event(event)
    return normalized


def test_every_transaction_parses_and_normalizes_without_errors(upstream: Upstream) -> None:
    """Request, manual and job transactions (with http, db, nested and failing spans) all pass
    sentry-relay's normalizer with no errors and are read back by sentry-sdk's Envelope parser."""
    with Sink() as sink:
        tripwire.init(sink.dsn, release="2.0", environment="staging", traces_sample_rate=1.0)
        with serve(APPS["starlette"](upstream.url), "uvicorn") as running:
            assert httpx.get(f"{running.url}/items/a?password=hunter2").status_code == 200
            assert httpx.get(f"{running.url}/boom").status_code == 500
        with tripwire.start_span(op="task", name="manual") as root:
            root.set_data("items", [1, 2])
            with tripwire.start_span(op="step", name="inner"):
                pass
            try:
                with tripwire.start_span(op="step", name="failing"):
                    raise ValueError("x")
            except ValueError:
                pass

        @tripwire.monitor()
        def job() -> None:
            with tripwire.start_span(op="step", name="in job"):
                pass

        job()
        assert tripwire.flush(10)
        envelopes = _transaction_envelopes(sink)
    assert len(envelopes) == 4
    names = set()
    for envelope in envelopes:
        (item,) = envelope.items
        assert item.data_category == "transaction"
        assert envelope.headers["trace"]["public_key"] == "publickey"
        # The parsed JSON, as get_transaction_event() returns it (typed there as sentry-sdk's own
        # Event, whose AnnotatedValue fields never come out of JSON).
        event: dict[str, Any] | None = item.payload.json
        assert event is not None and event["type"] == "transaction"
        assert envelope.headers["trace"]["trace_id"] == event["contexts"]["trace"]["trace_id"]
        normalized = _normalize(event)
        assert not normalized.get("errors"), normalized.get("errors")
        assert normalized["type"] == "transaction"
        assert len(normalized["spans"]) == len(event["spans"])
        names.add(event["transaction"])
        if event["transaction"] == "/items/{tag}":
            http_span = event["spans"][0]
            assert "hunter2" not in str(event)
            assert http_span["op"] == "http.client"
    assert names == {
        "/items/{tag}",
        "/boom",
        "manual",
        "test_every_transaction_parses_and_normalizes_without_errors.<locals>.job",
    }
