"""Counters of everything the SDK did not deliver, by reason and data category.

Reasons follow the Sentry client-report vocabulary where one exists, so the counts can be sent as
``client_report`` items unchanged: queue_full (sent as ``queue_overflow``), rate_limited
(``ratelimit_backoff``), network_error, rejected (``send_error``), too_large, before_send,
sample_rate, ignored, deduplicated, internal_error, and repeat_limit (occurrences of one error beyond
its per-minute budget: counted here, and the count rides on that error's next event); for profiles
insufficient_data (fewer than two samples: a transaction shorter than two sampling ticks) and
max_samples (a profile cut at its sample cap).
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple would compile each string
# annotation into a ForwardRef at import (measured: 0.5 ms for Options alone).

import itertools
import threading
from collections import Counter
from typing import Any, NamedTuple

from ._forksafe import renew_lock_after_fork
from ._log import logger

REASONS = (
    "queue_full",
    "rate_limited",
    "network_error",
    "rejected",
    "too_large",
    "before_send",
    "sample_rate",
    "repeat_limit",
    "ignored",
    "deduplicated",
    "internal_error",
    "insufficient_data",
    "max_samples",
)


class Drop(NamedTuple):
    reason: str
    category: str
    reporter: str | None


class DropCounter:
    """Thread-safe counters; ``take_unreported()`` hands the counts since the last call to a reporter."""

    def __init__(self, debug: bool = False) -> None:
        #: With ``debug`` every drop is logged (warning level, ``tripwire`` logger).
        self.debug = debug
        self._lock = threading.RLock()  # reentrant: see _forksafe (captures from signal handlers)
        renew_lock_after_fork(self)
        self._total: Counter[Drop] = Counter()
        self._unreported: Counter[Drop] = Counter()
        self.sent: Counter[str] = Counter()
        #: Counters for drops too frequent for a locked record() (a request sampled out by tracing):
        #: ``next(counter)`` counts one; their gains are folded in whenever the counts are read.
        self._fast: dict[Drop, tuple[itertools.count[int], list[int]]] = {}

    def fast_counter(self, reason: str, category: str) -> "itertools.count[int]":
        """A counter of drops where ``next(counter)`` (one C call, no lock) counts one."""
        key = Drop(reason, category, None)
        with self._lock:
            entry = self._fast.get(key)
            if entry is None:
                entry = self._fast[key] = (itertools.count(), [0])
        return entry[0]

    def _fold_fast(self) -> None:
        # Under the lock: what each fast counter gained since the last read becomes a plain count.
        for key, (counter, taken) in self._fast.items():
            total = int(repr(counter)[6:-1])  # the count so far, without counting one more
            gained = total - taken[0]
            if gained:
                taken[0] = total
                self._total[key] += gained
                self._unreported[key] += gained

    def record(
        self, reason: str, category: str = "error", quantity: int = 1, reporter: str | None = None
    ) -> None:
        key = Drop(reason, category, reporter)
        with self._lock:
            self._total[key] += quantity
            self._unreported[key] += quantity
        if self.debug:
            logger.warning(
                "tripwire: dropped %d %s item(s): %s%s",
                quantity,
                category,
                reason,
                f" (reporter {reporter})" if reporter else "",
            )

    def record_sent(self, reporter: str, quantity: int = 1) -> None:
        with self._lock:
            self.sent[reporter] += quantity

    def take_unreported(self, reporter: str | None = None) -> Counter[Drop]:
        """The counts since the last call, and forget them.

        With ``reporter``, only the drops of that reporter and those of the client itself (reporter
        None) are taken; other reporters' drops stay for them.
        """
        with self._lock:
            self._fold_fast()
            if reporter is None:
                taken, self._unreported = self._unreported, Counter()
                return taken
            taken = Counter({k: n for k, n in self._unreported.items() if k.reporter in (None, reporter)})
            for key in taken:
                del self._unreported[key]
        return taken

    def snapshot(self) -> dict[str, Any]:
        """``{"dropped": {reason: n}, "dropped_by": [...], "sent": {reporter: n}}``."""
        with self._lock:
            self._fold_fast()
            total = Counter(self._total)
            sent = dict(self.sent)
        by_reason: Counter[str] = Counter()
        for key, count in total.items():
            by_reason[key.reason] += count
        detail = [
            {"reason": k.reason, "category": k.category, "reporter": k.reporter, "quantity": n}
            for k, n in sorted(total.items(), key=lambda kv: (kv[0].reason, kv[0].category))
        ]
        return {"dropped": dict(by_reason), "dropped_by": detail, "sent": sent}
