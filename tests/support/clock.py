"""A clock for the delivery machine that runs faster than real time, so tests never sit out back-offs.

Inject it into a reporter (``SentryReporter(dsn, clock=FastClock())``): its back-offs and rate-limit
windows then pass ``speed`` times faster, in the same order and with the same lengths *in clock
seconds*. Real timestamps (the sink's) convert with :meth:`FastClock.seconds`.
"""

from __future__ import annotations

import threading
import time

from tripwire.delivery.clock import Clock


class FastClock(Clock):
    """Monotonic time running ``speed`` times faster than real time."""

    def __init__(self, speed: float = 20.0) -> None:
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self.speed

    def wait(self, cond: threading.Condition, seconds: float | None) -> None:
        cond.wait(None if seconds is None else seconds / self.speed)

    def seconds(self, real_seconds: float) -> float:
        """A span of real time measured elsewhere (``time.monotonic``), in this clock's seconds."""
        return real_seconds * self.speed


class ManualClock(Clock):
    """Time that moves only when a test calls :meth:`advance` (for state without a thread)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds
