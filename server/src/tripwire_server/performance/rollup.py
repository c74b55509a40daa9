"""Fold transactions into rollup rows: per project × environment × release × transaction × op,
per minute, per hour and per day.

A row holds the count, the failures, the summed duration and a duration histogram
(:mod:`.histogram`); rows of the same key add up, so any time range is answered from rollups alone.
Coarser rows answer longer ranges: a week is 7 day rows per transaction instead of 10,080 minute
rows (the Performance page reads those), or 168 hour rows (the summary's chart).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from . import histogram
from .model import Transaction

#: Rollup resolutions in seconds.
MINUTE = 60
HOUR = 3600
DAY = 86400
RESOLUTIONS = (MINUTE, HOUR, DAY)

RollupKey = tuple[int, int, float, str, str, str, str]  # project, res, start, env, release, name, op


@dataclasses.dataclass
class Rollup:
    count: int = 0
    failures: int = 0
    duration_sum: float = 0.0
    histogram: histogram.Histogram = dataclasses.field(default_factory=dict)

    def add(self, other: Rollup) -> None:
        self.count += other.count
        self.failures += other.failures
        self.duration_sum += other.duration_sum
        histogram.merge(self.histogram, other.histogram)


@dataclasses.dataclass
class SpanOpTime:
    count: int = 0
    total_ms: float = 0.0


def span_category(op: str) -> str:
    """``db.sql.query`` -> ``db``: the breakdown Sentry shows (db, http, cache, ...)."""
    return (op.split(".", 1)[0] or "default")[:32]


def bucket_start(ts: float, res: int) -> float:
    return float(int(ts // res) * res)


def fold(
    transactions: Iterable[Transaction],
) -> tuple[dict[RollupKey, Rollup], dict[RollupKey, SpanOpTime]]:
    """Rollups and span-op times of ``transactions``, at every resolution, by the end timestamp."""
    rollups: dict[RollupKey, Rollup] = {}
    ops: dict[RollupKey, SpanOpTime] = {}
    for tx in transactions:
        duration = tx.duration_ms
        index = histogram.bucket(duration)
        per_op: dict[str, list[float]] = {}
        for span in tx.spans:
            agg = per_op.setdefault(span_category(span.op), [0, 0.0])
            agg[0] += 1
            agg[1] += span.duration_ms
        for res in RESOLUTIONS:
            start = bucket_start(tx.timestamp, res)
            key = (tx.project_id, res, start, tx.environment, tx.release, tx.name, tx.op)
            r = rollups.get(key)
            if r is None:
                r = rollups[key] = Rollup()
            r.count += 1
            r.failures += tx.failed
            r.duration_sum += duration
            r.histogram[index] = r.histogram.get(index, 0) + 1
            for category, (n, total) in per_op.items():
                okey = (tx.project_id, res, start, tx.environment, tx.release, tx.name, category)
                o = ops.get(okey)
                if o is None:
                    o = ops[okey] = SpanOpTime()
                o.count += int(n)
                o.total_ms += total
    return rollups, ops
