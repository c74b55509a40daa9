"""Rate limits a backend asked for, per data category, as the Sentry protocol specifies.

``X-Sentry-Rate-Limits: <seconds>:<cat;cat>:<scope>[:...], ...`` may come with any status (200
included) and wins over ``Retry-After``; an empty category list means every category. Without it, a
429 (or a 503 with ``Retry-After``) pauses every category for ``Retry-After`` seconds (or until the
HTTP date it names), 60 s when it is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

ALL = ""
DEFAULT_RETRY_AFTER = 60.0
# A backend asking for days of silence is more likely misconfigured than meant; cap what we honour.
MAX_RETRY_AFTER = 24 * 3600.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date); None if absent."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
        if seconds != seconds:  # "nan"
            return None
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def parse_sentry_rate_limits(value: str) -> dict[str, float]:
    """``{category: seconds}`` from an ``X-Sentry-Rate-Limits`` header (``""`` = every category)."""
    limits: dict[str, float] = {}
    for quota in value.split(","):
        parts = quota.strip().split(":")
        if not parts or not parts[0].strip():
            continue
        try:
            seconds = float(parts[0])
        except ValueError:
            seconds = DEFAULT_RETRY_AFTER
        if seconds != seconds:  # "nan"
            seconds = DEFAULT_RETRY_AFTER
        seconds = min(max(seconds, 0.0), MAX_RETRY_AFTER)
        categories = [c.strip() for c in parts[1].split(";")] if len(parts) > 1 else []
        categories = [c for c in categories if c] or [ALL]
        for category in categories:
            limits[category] = max(limits.get(category, 0.0), seconds)
    return limits


class RateLimits:
    """Per-category "disabled until" times (monotonic clock); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def update(self, status: int, headers: Mapping[str, str]) -> float:
        """Apply a response's limits; returns the longest wait it asked for (0 if none)."""
        now = time.monotonic()
        header = headers.get("x-sentry-rate-limits")
        if header:
            limits = parse_sentry_rate_limits(header)
        elif status == 429 or (status == 503 and headers.get("retry-after")):
            seconds = parse_retry_after(headers.get("retry-after"))
            limits = {ALL: DEFAULT_RETRY_AFTER if seconds is None else seconds}
        else:
            return 0.0
        with self._lock:
            for category, seconds in limits.items():
                self._until[category] = max(self._until.get(category, 0.0), now + seconds)
        return max(limits.values(), default=0.0)

    def limited_until(self, categories: Iterable[str]) -> float:
        """Monotonic time until which any of ``categories`` is limited; 0 when none is."""
        now = time.monotonic()
        with self._lock:
            if not self._until:
                return 0.0
            until = self._until.get(ALL, 0.0)
            for category in categories:
                until = max(until, self._until.get(category, 0.0))
        return until if until > now else 0.0

    def is_limited(self, categories: Iterable[str]) -> bool:
        return self.limited_until(categories) > 0.0

    def active(self) -> dict[str, float]:
        """``{category: seconds left}`` of the limits in force (for stats and logs)."""
        now = time.monotonic()
        with self._lock:
            return {c: round(u - now, 3) for c, u in self._until.items() if u > now}
