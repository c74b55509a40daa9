"""Error events in day partitions on PostgreSQL (migration 10), and their retention.

``events`` is partitioned by arrival time (``received_at``), one partition per UTC day, named
``events_pYYYYMMDD``. Partitions are made a few days ahead (at migration and at each retention
sweep) and, should one still be missing, by the digest before it inserts. Retention drops the
partitions whose whole day is older than every project's retention: no ``DELETE``, so no bloat.
Rows are still deleted one by one where a project keeps events for less time than the longest
retention, or past its event count cap (``retention_max_events``).

A partitioned table's unique keys must hold the partition key, so the database cannot refuse a
second copy of ``(project_id, event_id)`` by itself: the digest looks the batch's event ids up
and inserts only new ones, under a per-project advisory lock taken before anything else in its
transaction, so that two digesting processes cannot both insert the same event.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable
from typing import Any

from ._pg_locks import SCOPED_KEY
from .database import Cursor, Database
from .issue_rows import EVENT_INSERT

_DAY = 86400
#: Days after today whose partitions exist before any event arrives for them.
AHEAD_DAYS = 3
# Any fixed numbers: the advisory lock under which event partitions are created, and the high
# half of the per-project lock that serializes the digest's event inserts of one project.
_PARTITION_LOCK = 0x7472_6570
_EVENT_LOCK = 0x7472_6576
_COLUMNS = (
    "id, project_id, event_id, issue_id, timestamp, received_at, level, title, release,"
    " environment, grouping_hash, data"
)


def partition_name(day: float) -> str:
    """``events_pYYYYMMDD``: the partition that holds events received on the UTC day ``day``."""
    return "events_p" + _dt.datetime.fromtimestamp(day, _dt.timezone.utc).strftime("%Y%m%d")


def _day_of(name: str) -> float | None:
    try:
        day = _dt.datetime.strptime(name.rsplit("_p", 1)[-1], "%Y%m%d")
    except ValueError:
        return None
    return day.replace(tzinfo=_dt.timezone.utc).timestamp()


def _day(ts: float) -> float:
    return float(math.floor(ts / _DAY) * _DAY)


class EventPartitions:
    """The day partitions of ``events`` in one PostgreSQL database (see the module docstring).

    The PostgreSQL database holds one and answers its event hooks with it
    (:meth:`~.database.Database.insert_events`, ``drop_expired_events``, ...).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        #: Days whose partition was seen to exist (committed): the digest skips looking them up.
        self._event_days: set[float] | None = None

    # -- the upgrade from one table ----------------------------------------------------------

    def copy_events_v9(self, c: Cursor) -> None:
        """Move every row of the unpartitioned table into day partitions, ids kept."""
        days = {
            float(r[0]) for r in c.all("SELECT DISTINCT floor(received_at / 86400) * 86400 FROM events_v9")
        }
        self.create(c, days | self._days_ahead(time.time()))
        c.ex(f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM events_v9")
        last = c.one("SELECT MAX(id) FROM events_v9")[0]
        if last is not None:
            # New events continue the old numbering (ids order an issue's events).
            c.ex(f"ALTER TABLE events ALTER COLUMN id RESTART WITH {int(last) + 1}")
        c.ex("DROP TABLE events_v9")

    # -- partitions --------------------------------------------------------------------------

    @staticmethod
    def _days_ahead(now: float) -> set[float]:
        today = _day(now)
        return {today + k * _DAY for k in range(AHEAD_DAYS + 1)}

    def create(self, c: Cursor, days: set[float]) -> None:
        """Make the partitions of ``days`` that are missing, in ``c``'s transaction."""
        known = self._event_days if self._event_days is not None else set()
        missing = []
        for day in sorted(days - known):
            if c.one("SELECT to_regclass(?)", (partition_name(day),))[0] is None:
                missing.append(day)
            else:
                known.add(day)  # committed by someone: it stays until retention drops it
        self._event_days = known
        if not missing:
            return
        c.ex(f"SELECT pg_advisory_xact_lock({SCOPED_KEY})", (_PARTITION_LOCK,))
        for day in missing:
            c.ex(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF events"
                f" FOR VALUES FROM ({day!r}) TO ({day + _DAY!r})"
            )

    def create_ahead(self, now: float) -> None:
        """Make the partitions of today and the next :data:`AHEAD_DAYS` days if missing."""
        with self.db.tx() as c:
            self.create(c, self._days_ahead(now))

    def names(self) -> list[str]:
        """Names of the partitions of ``events``, oldest first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT child.relname FROM pg_inherits i"
                " JOIN pg_class child ON child.oid = i.inhrelid"
                " JOIN pg_class parent ON parent.oid = i.inhparent"
                " JOIN pg_namespace n ON n.oid = parent.relnamespace"
                " WHERE parent.relname = 'events' AND n.nspname = current_schema()"
            )
        return sorted(r[0] for r in rows)

    # -- digest ------------------------------------------------------------------------------

    @staticmethod
    def lock_projects(c: Cursor, project_ids: list[int]) -> None:
        """Take the per-project locks of the event inserts, in project order, before any row lock
        of the batch: two digesting processes then queue up on them and cannot deadlock."""
        for project_id in sorted(project_ids):
            key = (_EVENT_LOCK << 32) | (project_id & 0xFFFF_FFFF)
            c.ex(f"SELECT pg_advisory_xact_lock({SCOPED_KEY})", (key,))

    def insert_events(self, c: Cursor, rows: list[tuple[Any, ...]]) -> list[bool]:
        if not rows:
            return []
        self.create(c, {_day(float(row[4])) for row in rows})
        by_project: dict[int, list[str]] = {}
        for row in rows:
            by_project.setdefault(row[0], []).append(row[1])
        existing: set[tuple[int, str]] = set()
        for project_id, ids in sorted(by_project.items()):
            existing.update(
                (project_id, r[0])
                for r in c.all(
                    "SELECT event_id FROM events WHERE project_id = ? AND event_id = ANY(?)",
                    (project_id, ids),
                )
            )
        out = []
        fresh = []
        for row in rows:
            key = (row[0], row[1])
            new = key not in existing
            existing.add(key)  # a second copy in the same batch is a duplicate too
            out.append(new)
            if new:
                fresh.append(row)
        c.many(EVENT_INSERT, fresh)
        return out

    # -- retention ---------------------------------------------------------------------------

    @staticmethod
    def retention_cutoff(now: float, days: int) -> float:
        # Whole days, as partitions hold them: with every project on the longest retention, the
        # row-by-row pass that follows the partition drop finds nothing left to delete.
        return _day(now - days * _DAY)

    def drop_expired(
        self, now: float, keep_days: list[int], free_attachments: Callable[[Cursor, float], None]
    ) -> int:
        """Make the partitions ahead, then drop the days every project's retention has passed."""
        self.create_ahead(now)
        if not keep_days or not all(days > 0 for days in keep_days):
            return 0
        return self._drop_before(self.retention_cutoff(now, max(keep_days)), free_attachments)

    def _drop_before(self, cutoff: float, free_attachments: Callable[[Cursor, float], None]) -> int:
        """Drop the partitions of days that ended by ``cutoff``; the events they held (counted)."""
        removed = 0
        for name in self.names():
            day = _day_of(name)
            if day is None or day + _DAY > cutoff:
                continue
            with self.db.tx() as c:
                removed += int(c.one(f"SELECT COUNT(*) FROM {name}")[0])
                # Attachments of those events go with them (and give their bytes back).
                free_attachments(c, day + _DAY)
                c.ex(f"DROP TABLE IF EXISTS {name}")
            if self._event_days is not None:
                self._event_days.discard(day)
        return removed
