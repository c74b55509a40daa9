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
    # A batch holds many transactions of few names in few minutes: each (minute, transaction key)
    # resolves its rows at the three resolutions once, and the transactions of that minute add
    # into them directly. Every row still receives its additions in transaction order, so the
    # float sums are exactly those of one lookup per transaction and resolution.
    targets: dict[tuple[float, int, str, str, str, str], _Target] = {}
    categories: dict[str, str] = {}
    for tx in transactions:
        ts = tx.timestamp
        target = targets.get((ts // MINUTE, tx.project_id, tx.environment, tx.release, tx.name, tx.op))
        if target is None:
            target = _Target(tx, rollups, ops)
            targets[(ts // MINUTE, tx.project_id, tx.environment, tx.release, tx.name, tx.op)] = target
        duration = tx.duration_ms
        index = histogram.bucket(duration)
        failed = tx.failed
        for r in target.rollups:
            r.count += 1
            r.failures += failed
            r.duration_sum += duration
            h = r.histogram
            h[index] = h.get(index, 0) + 1
        per_op: dict[str, list[float]] = {}
        for span in tx.spans:
            op = span.op
            category = categories.get(op)
            if category is None:
                category = categories[op] = span_category(op)
            agg = per_op.get(category)
            if agg is None:
                agg = per_op[category] = [0, 0.0]
            agg[0] += 1
            # Span.duration_ms, inlined: this runs for every span of every transaction.
            agg[1] += max(0.0, (span.timestamp - span.start_timestamp) * 1000.0)
        for category, (n, total) in per_op.items():
            for o in target.op_times(category):
                o.count += int(n)
                o.total_ms += total
    return rollups, ops


class _Target:
    """The rows one (minute, transaction key) adds into, at every resolution."""

    __slots__ = ("_key", "_ops", "_starts", "_times", "rollups")

    def __init__(
        self, tx: Transaction, rollups: dict[RollupKey, Rollup], ops: dict[RollupKey, SpanOpTime]
    ) -> None:
        self._starts = [bucket_start(tx.timestamp, res) for res in RESOLUTIONS]
        self._key = (tx.project_id, tx.environment, tx.release, tx.name)
        self._ops = ops
        self._times: dict[str, list[SpanOpTime]] = {}
        self.rollups = []
        for res, start in zip(RESOLUTIONS, self._starts, strict=True):
            key = (tx.project_id, res, start, tx.environment, tx.release, tx.name, tx.op)
            r = rollups.get(key)
            if r is None:
                r = rollups[key] = Rollup()
            self.rollups.append(r)

    def op_times(self, category: str) -> list[SpanOpTime]:
        times = self._times.get(category)
        if times is None:
            project_id, environment, release, name = self._key
            times = self._times[category] = []
            for res, start in zip(RESOLUTIONS, self._starts, strict=True):
                okey = (project_id, res, start, environment, release, name, category)
                o = self._ops.get(okey)
                if o is None:
                    o = self._ops[okey] = SpanOpTime()
                times.append(o)
        return times
