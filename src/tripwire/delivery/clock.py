"""The time base of backoff and rate-limit windows: the monotonic clock, or one a test injects.

A worker never sleeps with ``time.sleep``: it waits on its condition for what the clock says is
left, so a test that injects a faster clock sees the same sequence of attempts without waiting
through real back-offs. Deadlines the *caller* gives (``flush(timeout)``) stay in real seconds.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time: ``time.monotonic`` and plain condition waits."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, cond: threading.Condition, seconds: float | None) -> None:
        """Wait on ``cond`` (held by the caller) for a notify, or ``seconds`` of this clock."""
        cond.wait(seconds)


#: The clock every worker uses unless given another.
MONOTONIC = Clock()
