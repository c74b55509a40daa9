"""What to do with a payload after one attempt: pure functions, tested without a network.

The sender feeds :func:`classify` what came back (a status and headers, or the error raised), and
:func:`backoff` how many times in a row the backend failed; :func:`rate_limits` reads the windows a
response asks for. None of them does I/O, reads a clock or keeps state, in the sans-I/O manner of
h11: ``tripwire.reporters.http`` applies their answers.

The rules, as Sentry's and BugSnag's SDKs and servers understand them:

- 2xx: sent.
- The backend could not be reached (refused, DNS, connect timeout): retry; the payload is not at
  fault, so it uses up no attempt.
- 408, 429, 502, 503, 504: "not now" rather than "not this payload": retry, no attempt used up.
- Other 5xx, or an error once the request was on its way (timeout, reset): retry, one attempt used
  up; a payload that keeps failing is given up after ``max_attempts`` (counted ``rejected`` for a
  status, ``network_error`` for an error).
- 413: dropped as ``too_large``; any other 4xx (and 1xx/3xx as a final answer): dropped as
  ``rejected``. Retrying would only get the same answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from .connections import Unreachable

SENT, RETRY, DROP = "sent", "retry", "drop"

#: Statuses that say "not now" rather than "not this payload": they never use up attempts.
UNAVAILABLE = frozenset({408, 429, 502, 503, 504})

#: Every category (an empty category list in ``X-Sentry-Rate-Limits``).
ALL = ""
#: What a 429 without ``Retry-After`` pauses for.
DEFAULT_RETRY_AFTER = 60.0
#: A backend asking for days of silence is more likely misconfigured than meant; cap what we honour.
MAX_RETRY_AFTER = 24 * 3600.0


class Outcome:
    """What :func:`classify` decided: ``action`` (SENT, RETRY or DROP) and its details."""

    __slots__ = ("action", "backs_off", "reason", "uses_attempt")

    def __init__(self, action: str, reason: str = "", uses_attempt: bool = False, backs_off: bool = False):
        self.action = action
        #: The drop reason: of a DROP, or of a RETRY once the payload is given up.
        self.reason = reason
        #: Whether this attempt counts towards ``max_attempts``.
        self.uses_attempt = uses_attempt
        #: Whether the sender waits a :func:`backoff` before the next attempt (a 429 waits for its
        #: rate limit instead).
        self.backs_off = backs_off

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Outcome({fields})"


def classify(status: int, headers: Mapping[str, str], error: BaseException | None = None) -> Outcome:
    """The outcome of one attempt: the response's ``status`` (0 when ``error`` was raised instead)."""
    if error is not None:
        if isinstance(error, Unreachable):
            return Outcome(RETRY, "network_error", uses_attempt=False, backs_off=True)
        return Outcome(RETRY, "network_error", uses_attempt=True, backs_off=True)
    if 200 <= status < 300:
        return Outcome(SENT)
    if status in UNAVAILABLE:
        return Outcome(RETRY, "network_error", uses_attempt=False, backs_off=status != 429)
    if status >= 500:
        return Outcome(RETRY, "rejected", uses_attempt=True, backs_off=True)
    if status == 413:
        return Outcome(DROP, "too_large")
    return Outcome(DROP, "rejected")


def backoff(
    failures: int, base: float = 0.5, maximum: float = 10.0, jitter: Callable[[], float] | None = None
) -> float:
    """Seconds to wait after ``failures`` (>= 1) failures in a row: doubling from ``base`` up to
    ``maximum``, jittered to 50-100 % so processes that lost the same backend do not return in step.

    ``jitter()`` returns a number in [0, 1) (default ``random.random``).
    """
    if jitter is None:
        import random  # only once a backend fails: importing it costs 1.6 ms of CPU

        jitter = random.random
    nominal = min(maximum, base * 2.0 ** min(max(failures, 1) - 1, 64))
    return float(nominal * (0.5 + 0.5 * jitter()))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date); None if absent.

    ``now`` is the epoch time an HTTP date is measured from (default ``time.time()``).
    """
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
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        try:
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (OverflowError, OSError, ValueError):
            return None
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


def rate_limits(status: int, headers: Mapping[str, str], now: float | None = None) -> dict[str, float]:
    """``{category: seconds}`` a response (lower-cased ``headers``) asks the sender to hold back.

    ``X-Sentry-Rate-Limits`` may come with any status (200 included) and wins over ``Retry-After``.
    Without it, a 429 (or a 503 with ``Retry-After``) pauses every category for ``Retry-After``
    seconds (or until the HTTP date it names), :data:`DEFAULT_RETRY_AFTER` when it is missing.
    """
    header = headers.get("x-sentry-rate-limits")
    if header:
        return parse_sentry_rate_limits(header)
    if status == 429 or (status == 503 and headers.get("retry-after")):
        seconds = parse_retry_after(headers.get("retry-after"), now)
        return {ALL: DEFAULT_RETRY_AFTER if seconds is None else seconds}
    return {}
