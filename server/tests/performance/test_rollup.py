"""Folding transactions into rollups: the batch fold gives exactly what one lookup per
transaction and resolution gives (the plain definition, kept here as the reference)."""

from __future__ import annotations

import random

from tripwire_server.performance import histogram
from tripwire_server.performance.model import Span, Transaction
from tripwire_server.performance.rollup import (
    RESOLUTIONS,
    Rollup,
    RollupKey,
    SpanOpTime,
    bucket_start,
    fold,
    span_category,
)


def reference_fold(
    transactions: list[Transaction],
) -> tuple[dict[RollupKey, Rollup], dict[RollupKey, SpanOpTime]]:
    """Every transaction added to its row at every resolution, one lookup each."""
    rollups: dict[RollupKey, Rollup] = {}
    ops: dict[RollupKey, SpanOpTime] = {}
    for tx in transactions:
        per_op: dict[str, list[float]] = {}
        for span in tx.spans:
            agg = per_op.setdefault(span_category(span.op), [0, 0.0])
            agg[0] += 1
            agg[1] += span.duration_ms
        for res in RESOLUTIONS:
            start = bucket_start(tx.timestamp, res)
            r = rollups.setdefault(
                (tx.project_id, res, start, tx.environment, tx.release, tx.name, tx.op), Rollup()
            )
            r.count += 1
            r.failures += tx.failed
            r.duration_sum += tx.duration_ms
            histogram.add(r.histogram, tx.duration_ms)
            for category, (n, total) in per_op.items():
                key = (tx.project_id, res, start, tx.environment, tx.release, tx.name, category)
                o = ops.setdefault(key, SpanOpTime())
                o.count += int(n)
                o.total_ms += total
    return rollups, ops


def _transactions(rng: random.Random, count: int) -> list[Transaction]:
    # Around a day boundary, over a few minutes and hours, so that rows of every resolution mix.
    midnight = 1_790_000_000.0 // 86400 * 86400
    out = []
    for i in range(count):
        end = midnight + rng.uniform(-2 * 3600, 2 * 3600)
        start = end - rng.lognormvariate(-2.5, 1.0)
        spans = [
            Span(
                f"{i:08x}{n:08x}",
                f"{i:016x}",
                rng.choice(["db.sql.query", "db", "http.client", "cache.get", "", ".odd", "x" * 40]),
                "SELECT 1",
                start + n * 0.001,
                start + n * 0.001 + rng.choice([0.0005, -0.001, rng.random() * 0.01]),
            )
            for n in range(rng.randrange(0, 12))
        ]
        out.append(
            Transaction(
                rng.choice([1, 2]),
                f"{i:032x}",
                f"{i:032x}",
                f"{i:016x}",
                None,
                f"GET /r{rng.randrange(4)}",
                rng.choice(["http.server", "task"]),
                start,
                end,
                rng.choice(["ok", "ok", "internal_error"]),
                rng.choice([None, 200, 503]),
                rng.choice(["production", "staging"]),
                rng.choice(["", "app@1"]),
                spans,
            )
        )
    return out


def test_the_batch_fold_equals_one_lookup_per_transaction_and_resolution() -> None:
    """Counts, failures, histograms and the float sums themselves (added in the same order)."""
    rng = random.Random(14)
    for _ in range(20):
        txs = _transactions(rng, rng.randrange(1, 400))
        rollups, ops = fold(txs)
        expected_rollups, expected_ops = reference_fold(txs)
        assert rollups == expected_rollups
        assert ops == expected_ops


def test_a_transaction_adds_to_its_minute_hour_and_day() -> None:
    """One transaction of two db spans: three rollup rows and three db rows."""
    tx = _transactions(random.Random(1), 1)[0]
    tx.spans = [
        Span("a" * 16, None, "db.sql.query", "", 10.0, 10.5),
        Span("b" * 16, None, "db", "", 11.0, 11.25),
    ]
    tx.start_timestamp, tx.timestamp = 3599.0, 3601.5
    rollups, ops = fold([tx])
    assert sorted(k[1:3] for k in rollups) == [(60, 3600.0), (3600, 3600.0), (86400, 0.0)]
    assert all(r.count == 1 and r.duration_sum == 2500.0 for r in rollups.values())
    assert {k[1]: (o.count, o.total_ms) for k, o in ops.items()} == {
        60: (2, 750.0),
        3600: (2, 750.0),
        86400: (2, 750.0),
    }
