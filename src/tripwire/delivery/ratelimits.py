"""The rate-limit windows a backend asked for, per data category (see :func:`.policy.rate_limits`)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from .._forksafe import renew_lock_after_fork
from .clock import MONOTONIC, Clock
from .policy import ALL, rate_limits


class RateLimits:
    """Per-category "disabled until" times on ``clock``; thread-safe."""

    def __init__(self, clock: Clock = MONOTONIC) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        renew_lock_after_fork(self)
        self._until: dict[str, float] = {}

    def update(self, status: int, headers: Mapping[str, str]) -> float:
        """Apply a response's limits; returns the longest wait it asked for (0 if none)."""
        limits = rate_limits(status, headers)
        if not limits:
            return 0.0
        now = self.clock.now()
        with self._lock:
            for category, seconds in limits.items():
                self._until[category] = max(self._until.get(category, 0.0), now + seconds)
        return max(limits.values())

    def limited_until(self, categories: Iterable[str]) -> float:
        """Clock time until which any of ``categories`` is limited; 0 when none is."""
        if not self._until:
            return 0.0
        now = self.clock.now()
        with self._lock:
            until = self._until.get(ALL, 0.0)
            for category in categories:
                until = max(until, self._until.get(category, 0.0))
        return until if until > now else 0.0

    def is_limited(self, categories: Iterable[str]) -> bool:
        return self.limited_until(categories) > 0.0

    def active(self) -> dict[str, float]:
        """``{category: seconds left}`` of the limits in force (for stats and logs)."""
        now = self.clock.now()
        with self._lock:
            return {c: round(u - now, 3) for c, u in self._until.items() if u > now}
