"""The ``p95`` trigger's decision: a window of rollups -> its percentile against a limit -> fire or
resolve.

Pure, like :mod:`.rules`: the store reads the window's rollup rows inside the digest's transaction
(``store/latency_alerts.py``); this module says which rows make the window
(:func:`window_ranges`), judges them (:func:`tally`, :func:`state`) and, for a message, merges
their histograms and reads the percentile (:func:`merge`). Percentiles come from the rollups'
log-scale histograms, so they are within :data:`~..performance.histogram.RELATIVE_ACCURACY` (2 %)
of the real durations, like every percentile the Performance pages show.

A rule fires for a transaction name when the window holds at least ``min_count`` transactions and
their percentile is above ``above_ms``; it sends a *resolved* notice when, after a notification
that was sent, the percentile of a window with enough transactions is back at or under the limit.
A window with too few transactions says nothing either way.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Iterable
from typing import Any

from .. import _json
from ..performance import histogram
from ..performance.rollup import HOUR, MINUTE
from .rules import minute

FIRING = "firing"
RESOLVED = "resolved"
#: Too few transactions in the window to say anything.
UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Window:
    """What the window's rollups of one transaction name say: the count and, per bucket index,
    the merged histogram's counts (dense)."""

    count: int
    buckets: list[int]

    def percentile_ms(self, percentile: int) -> float | None:
        """:func:`~..performance.histogram.quantile` (nearest rank) on the dense counts, in C:
        converting ~570 slots to a dict per name cost more than merging the window's rows."""
        cumulative = list(itertools.accumulate(self.buckets))
        total = cumulative[-1] if cumulative else 0
        if total <= 0:
            return None
        rank = max(1, math.ceil(percentile / 100 * total))
        return histogram.value(bisect.bisect_left(cumulative, rank))


def window_start(now: float, minutes: int) -> float:
    """The first minute bucket of a window of ``minutes``: the current minute and those before it."""
    return minute(now) - (max(1, minutes) - 1) * 60


def window_ranges(now: float, minutes: int) -> list[tuple[int, float, float | None]]:
    """The rollup rows that make up a window: ``(resolution, first bucket, end bucket or None)``.

    Every transaction is rolled up at every resolution, so an hour row holds exactly its 60 minute
    rows: the whole hours inside a long window are read from hour rows (a day is ~23 hour rows and
    at most 118 minute rows per key instead of 1,440), the partial hours at its ends from minutes.
    """
    since = window_start(now, minutes)
    first_hour = math.ceil(since / HOUR) * HOUR
    this_hour = math.floor(now / HOUR) * HOUR
    if this_hour <= first_hour:
        return [(MINUTE, since, None)]
    return [
        (MINUTE, since, float(first_hour)),
        (HOUR, float(first_hour), float(this_hour)),
        (MINUTE, float(this_hour), None),
    ]


def _encoded(text: str | None) -> list[int]:
    """A stored histogram as ``[lowest index, count, count, ...]`` (see histogram.encode)."""
    data = _json.loads(text) if text else []
    if isinstance(data, dict):  # the sparse form an empty or old row may still have
        sparse = histogram.decode(text)
        data = [0, *(sparse.get(i, 0) for i in range(max(sparse, default=-1) + 1))] if sparse else []
    return data


def merge(rows: Iterable[tuple[int, str]]) -> Window:
    """One :class:`Window` from rollup rows ``(count, stored histogram)`` (any ops, releases ...)."""
    acc = histogram.dense()
    count = 0
    for n, text in rows:
        count += int(n)
        histogram.merge_encoded(acc, _encoded(text))
    return Window(count, acc)


@dataclasses.dataclass(frozen=True)
class Tally:
    """Enough of a window to judge it against a limit: its transactions, and how many of them lie
    in buckets reported at or under the limit."""

    count: int
    at_most: int


def _last_index_at_most(limit_ms: float) -> int:
    # Reported bucket values grow with the index: the last bucket whose value is <= the limit.
    return bisect.bisect_right(range(histogram.MAX_INDEX + 1), limit_ms, key=histogram.value) - 1


def tally(rows: Iterable[tuple[int, str]], above_ms: float) -> Tally:
    """Count a window's rows against ``above_ms`` without merging them.

    The percentile is over the limit exactly when fewer than its rank are at or under it (nearest
    rank), so judging needs two sums per row (in C) rather than a bucket-by-bucket merge: a rule
    over a busy hour reads ~1,200 rows per batch, and merging them was a third of the digest's cost.
    """
    last = _last_index_at_most(above_ms)
    count = at_most = 0
    for _n, text in rows:
        data = _encoded(text)
        if len(data) < 2:
            continue
        lo = data[0]
        count += sum(data) - lo
        if last >= lo:
            at_most += sum(data[1 : last - lo + 2])
    return Tally(count, at_most)


def state(counted: Tally, *, percentile: int, min_count: int) -> str:
    """:data:`FIRING` (over the limit), :data:`RESOLVED` (at or under it) or :data:`UNKNOWN`.

    The same verdict as comparing ``merge(rows).percentile_ms(percentile)`` with the limit.
    """
    if counted.count < max(1, min_count):
        return UNKNOWN
    rank = max(1, math.ceil(percentile / 100 * counted.count))
    return FIRING if counted.at_most < rank else RESOLVED


def subject(name: str) -> str:
    """The alert subject of a transaction name (its cooldown and resolved state go by it)."""
    return f"transaction:{name}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def item(
    name: str,
    window: Window,
    *,
    status: str,
    percentile: int,
    above_ms: float,
    window_minutes: int,
    environment: str | None,
    release: str | None,
) -> dict[str, Any]:
    """The notification item of one transaction (docs/alerts.md, "The webhook body")."""
    value = window.percentile_ms(percentile) or 0.0
    p = f"p{percentile}"
    where = f"{window.count} transactions in {window_minutes} min"
    if status == FIRING:
        title = f"{name}: {p} {_ms(value)} ms, over {_ms(above_ms)} ms ({where})"
    else:
        title = f"{name}: {p} {_ms(value)} ms, at or under {_ms(above_ms)} ms again ({where})"
    return {
        "subject": subject(name),
        "transaction": name,
        "status": status,
        "title": title,
        "percentile": p,
        "duration_ms": round(value, 1),
        "threshold_ms": above_ms,
        "window_minutes": window_minutes,
        "count": window.count,
        "environment": environment,
        "release": release,
    }
