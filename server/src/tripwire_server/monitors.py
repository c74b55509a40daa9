"""Cron monitors: reading ``check_in`` items, computing when the next check-in is due, and the
clock that marks missed and timed-out runs.

The Sentry protocol (what ``sentry_sdk.monitor`` and ``tripwire.monitor(slug=...)`` send): a
``check_in`` item carries ``monitor_slug``, ``check_in_id``, ``status`` (``in_progress``, ``ok``,
``error``), ``duration`` in seconds, ``environment``, ``release`` and, to create or update the
monitor, ``monitor_config``: ``schedule`` (``{"type": "crontab", "value": "0 3 * * *"}`` or
``{"type": "interval", "value": 10, "unit": "minute"}``), ``timezone``, ``checkin_margin`` and
``max_runtime`` (both in minutes).

Parsing and scheduling are pure functions; :class:`MonitorClock` is the thin driver that calls
:meth:`Monitors.monitor_tick <tripwire_server.store.monitors.Monitors.monitor_tick>`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .normalize import parse_timestamp, trim
from .store.digest_records import CheckInRow

log = logging.getLogger("tripwire_server")

CHECKIN_STATUSES = frozenset({"in_progress", "ok", "error"})
_UNITS = {
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
_SLUG = re.compile(r"[^a-z0-9_-]+")
#: Defaults of Sentry: one minute of margin, thirty minutes of run time.
DEFAULT_MARGIN = 1.0
DEFAULT_MAX_RUNTIME = 30.0


def slugify(value: Any) -> str:
    """A monitor slug as Sentry makes it: lower case, ``[a-z0-9_-]``, at most 128 characters."""
    if not isinstance(value, str):
        raise ValueError("check-in without monitor_slug")
    slug = _SLUG.sub("-", value.strip().lower()).strip("-")[:128]
    if not slug:
        raise ValueError("empty monitor_slug")
    return slug


def normalize_schedule(raw: Any) -> dict[str, Any]:
    """A validated schedule; ValueError for anything the clock could not follow."""
    if not isinstance(raw, dict):
        raise ValueError("monitor_config.schedule must be an object")
    kind = raw.get("type")
    value = raw.get("value")
    if kind == "crontab":
        from croniter import croniter

        if not isinstance(value, str) or len(value) > 100 or not croniter.is_valid(value):
            raise ValueError(f"invalid crontab {value!r}")
        return {"type": "crontab", "value": value.strip()}
    if kind == "interval":
        unit = raw.get("unit") or "minute"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or unit not in _UNITS:
            raise ValueError(f"invalid interval {value!r} {unit!r}")
        return {"type": "interval", "value": min(value, 10_000), "unit": unit}
    raise ValueError(f"unknown schedule type {kind!r}")


def _minutes(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"expected minutes, got {value!r}")
    return float(min(value, 60 * 24 * 30))


def _timezone(value: Any) -> str:
    if value in (None, ""):
        return "UTC"
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("invalid timezone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}") from None
    return value


def normalize_config(raw: Any) -> dict[str, Any] | None:
    """``monitor_config`` as the store keeps it, or None when the check-in has none."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("monitor_config must be an object")
    return {
        "schedule": normalize_schedule(raw.get("schedule")),
        "timezone": _timezone(raw.get("timezone")),
        "checkin_margin": _minutes(raw.get("checkin_margin"), DEFAULT_MARGIN),
        "max_runtime": _minutes(raw.get("max_runtime"), DEFAULT_MAX_RUNTIME),
    }


def parse_checkin(data: Any, project_id: int, received_at: float) -> CheckInRow:
    """A ``check_in`` item's payload as a record; ValueError if it is not a valid check-in."""
    if not isinstance(data, dict):
        raise ValueError("check-in must be an object")
    status = data.get("status")
    if status not in CHECKIN_STATUSES:
        raise ValueError(f"unknown check-in status {status!r}")
    raw_id = data.get("check_in_id")
    try:
        check_in_id = uuid.UUID(str(raw_id)).hex if raw_id else uuid.uuid4().hex
    except ValueError:
        raise ValueError(f"invalid check_in_id {raw_id!r}") from None
    duration = data.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))):
        raise ValueError("duration must be a number of seconds")
    timestamp = parse_timestamp(data.get("timestamp")) or received_at
    environment = data.get("environment")
    release = data.get("release")
    return CheckInRow(
        project_id=project_id,
        slug=slugify(data.get("monitor_slug")),
        check_in_id=check_in_id,
        status=status,
        duration=None if duration is None else max(0.0, float(duration)),
        environment=trim(environment, 64) if isinstance(environment, str) and environment else None,
        release=trim(release, 250) if isinstance(release, str) and release else None,
        # A check-in cannot claim to come from the future; the server's clock decides lateness.
        timestamp=min(timestamp, received_at),
        config=normalize_config(data.get("monitor_config")),
    )


def next_expected(schedule: dict[str, Any] | None, timezone: str, after: float) -> float | None:
    """The first time strictly after ``after`` at which the schedule expects a check-in."""
    if not schedule:
        return None
    if schedule["type"] == "interval":
        return after + int(schedule["value"]) * _UNITS[schedule.get("unit") or "minute"]
    from croniter import croniter

    zone = ZoneInfo(timezone or "UTC")
    start = _dt.datetime.fromtimestamp(after, tz=zone)
    nxt = croniter(schedule["value"], start).get_next(_dt.datetime)
    return float(nxt.timestamp())


def next_after_miss(
    schedule: dict[str, Any] | None, timezone: str, due: float, now: float, margin: float
) -> float | None:
    """After a miss of the run due at ``due``: the first expected run whose margin (seconds) has
    not passed at ``now`` — computed directly, so a collector that was down for a year does not
    step through every missed minute (and marks one miss, not thousands)."""
    if not schedule:
        return None
    if schedule["type"] == "interval":
        period = int(schedule["value"]) * _UNITS[schedule.get("unit") or "minute"]
        steps = max(1, int((now - margin - due) // period) + 1)
        return due + steps * period
    return next_expected(schedule, timezone, max(due, now - margin))


def describe_schedule(schedule: dict[str, Any] | None) -> str:
    """``"0 3 * * *"`` or ``"every 10 minutes"`` (for pages and messages)."""
    if not schedule:
        return "no schedule"
    if schedule["type"] == "crontab":
        return str(schedule["value"])
    n = int(schedule["value"])
    unit = schedule.get("unit") or "minute"
    return f"every {n} {unit}{'s' if n != 1 else ''}"


class MonitorClock:
    """Calls ``store.monitors.monitor_tick(now)`` every ``interval`` seconds in a background thread.

    Every collector process runs one; the store makes sure one tick at a time does the work (an
    advisory lock on PostgreSQL, the write lock on SQLite), and a tick is idempotent, so several
    clocks never mark one miss twice. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        tick: Callable[[float], int],
        prune: Callable[[float], None],
        *,
        interval: float = 15.0,
        clock: Callable[[], float] = time.time,
        prune_interval: float = 3600.0,
    ) -> None:
        # Two callables rather than the repositories: the store's monitors module imports this one.
        self._tick = tick
        self._prune = prune
        self.interval = interval
        self.clock = clock
        self.prune_interval = prune_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_prune = 0.0
        #: Misses and timeouts marked by this clock; failed ticks (for the status endpoint and tests).
        self.marked = 0
        self.errors = 0

    def tick(self) -> int:
        now = self.clock()
        marked = int(self._tick(now))
        self.marked += marked
        if now >= self._next_prune:
            self._next_prune = now + self.prune_interval
            self._prune(now)
        return marked

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tripwire-monitor-clock", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:
                # A database hiccup: the next tick catches up (misses are found by time, not events).
                self.errors += 1
                log.exception("monitor clock tick failed")
