"""A burst of sampled units of work at default settings: every transaction is delivered, errors
keep priority, and whatever is dropped is counted."""

from __future__ import annotations

import pytest

import tripwire
from tests.support.figures import record
from tests.support.sink import Sink

BURST = 3000


@pytest.mark.slow
@pytest.mark.reliability
def test_burst_of_sampled_transactions_is_delivered_whole_with_its_errors() -> None:
    """3,000 transactions (3 spans each) finished as fast as the caller can, with an error every
    100: at default settings all of them and all the errors reach the server, nothing dropped."""
    with Sink() as sink:
        tripwire.init(sink.dsn, traces_sample_rate=1.0, release="1.0")
        for i in range(BURST):
            with tripwire.start_span(op="task", name="burst"):
                for step in range(3):
                    with tripwire.start_span(op="step", name=str(step)):
                        pass
                if i % 100 == 0:
                    tripwire.capture_message(f"error {i}", "error")
        assert tripwire.flush(120)
        transactions = sink.items("transaction")
        errors = sink.events
        stats = tripwire.stats()
    lost = BURST - len(transactions)
    record("transport", "tracing burst: transactions delivered", f"{len(transactions)} / {BURST}")
    record("transport", "tracing burst: transactions lost", lost, "default max_queue_size, one loopback sink")
    assert len(errors) == BURST // 100
    assert lost == 0, stats
    assert all(len(t["spans"]) == 3 for t in transactions)
    assert stats["dropped"] == {}


def test_full_queue_drops_transactions_before_errors_and_counts_them() -> None:
    """With a queue far too small for the burst, every error is still delivered; the transactions
    that did not fit are counted (queue_full, transaction and span), so delivered + counted = all."""
    with Sink() as sink:
        tripwire.init(sink.dsn, traces_sample_rate=1.0, max_queue_size=20)
        for i in range(400):
            with tripwire.start_span(op="task", name="burst"):
                pass
            if i % 20 == 0:
                tripwire.capture_message(f"error {i}", "error")
        assert tripwire.flush(60)
        delivered = len(sink.items("transaction"))
        errors = len(sink.events)
        counted = {
            (d["category"], d["reason"]): d["quantity"]
            for d in tripwire.stats()["dropped_by"]
            if d["category"] in ("transaction", "span")
        }
    assert errors == 20
    dropped = sum(n for (category, _), n in counted.items() if category == "transaction")
    assert dropped > 0 and delivered + dropped == 400, counted
    assert counted.get(("span", "queue_full"), 0) >= counted.get(("transaction", "queue_full"), 0)
