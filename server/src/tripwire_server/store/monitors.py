"""Cron monitors and check-ins: the repository of scheduled jobs.

Check-ins are written by the digest, in its transaction (:meth:`Monitors.write_checkins`);
the clock (:meth:`Monitors.monitor_tick`) marks missed and timed-out runs. Both open or
update the monitor's issue and queue ``cron`` alerts in the same transaction.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import monitors as _cron
from ._pg_locks import SCOPED_KEY
from .alert_records import CheckIn, Monitor
from .alerts import Alerts
from .base import NotFound
from .database import Cursor, Database
from .outcomes import upsert_outcomes

if TYPE_CHECKING:
    from .digest_records import CheckInRow, EnvelopeResult

log = logging.getLogger("tripwire_server")

_MONITOR_COLUMNS = (
    "id, project_id, slug, schedule, timezone, checkin_margin, max_runtime, environment, status,"
    " last_checkin, next_expected, issue_id, created_at"
)
_CHECKIN_COLUMNS = (
    "id, monitor_id, check_in_id, status, duration, environment, release, started_at, updated_at"
)
#: A DSN holder could otherwise create monitors without end: the rest are dropped and counted.
MAX_MONITORS_PER_PROJECT = 1000
#: Check-ins kept per monitor (the timeline and history need far fewer).
CHECKINS_PER_MONITOR = 500
# Any fixed number: the advisory lock that lets one PostgreSQL process at a time run the clock.
_CLOCK_LOCK = 0x7472_6D6F
_WHAT = {"missed": "missed check-in", "error": "failed", "timeout": "timed out"}
#: Errors of our own code (not of the database) while evaluating inside the digest transaction.
_PYTHON_ERRORS = (ValueError, TypeError, LookupError, ArithmeticError, AttributeError)


def _monitor(row: Sequence[Any]) -> Monitor:
    return Monitor(
        id=row[0],
        project_id=row[1],
        slug=row[2],
        schedule=json.loads(row[3]) if row[3] else None,
        timezone=row[4],
        checkin_margin=float(row[5]),
        max_runtime=float(row[6]),
        environment=row[7],
        status=row[8],
        last_checkin=row[9],
        next_expected=row[10],
        issue_id=row[11],
        created_at=row[12],
    )


class Monitors:
    """Cron monitors and their check-ins; a failure opens an issue and alerts through :attr:`alerts`."""

    def __init__(self, db: Database, alerts: Alerts) -> None:
        self.db = db
        #: The ``cron`` rules, their clock and the outbox.
        self.alerts = alerts

    # -- reading -----------------------------------------------------------------------------

    def list_monitors(self, project_id: int) -> list[Monitor]:
        """Monitors of a project, by slug."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_MONITOR_COLUMNS} FROM monitors WHERE project_id = ? ORDER BY slug", (project_id,)
            )
        return [_monitor(r) for r in rows]

    def get_monitor(self, project_id: int, slug: str) -> Monitor:
        """A monitor by slug. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = c.one(
                f"SELECT {_MONITOR_COLUMNS} FROM monitors WHERE project_id = ? AND slug = ?",
                (project_id, slug),
            )
        if row is None:
            raise NotFound(f"no monitor {slug!r}")
        return _monitor(row)

    def list_checkins(self, monitor_id: int, limit: int = 50) -> list[CheckIn]:
        """The monitor's latest check-ins, newest first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_CHECKIN_COLUMNS} FROM monitor_checkins WHERE monitor_id = ?"
                " ORDER BY started_at DESC, id DESC LIMIT ?",
                (monitor_id, max(0, limit)),
            )
        return [CheckIn(*r) for r in rows]

    # -- check-ins, inside the digest's transaction ------------------------------------------

    def write_checkins(self, c: Cursor, results: list[EnvelopeResult]) -> None:
        """Record the batch's check-ins in the digest's transaction."""
        rows = [ck for r in results for ck in r.checkins]
        if not rows:
            return
        now = self.alerts.clock()
        hour = float(int(now // 3600) * 3600)
        # In arrival order: an in_progress must land before the ok that closes it.
        for ck in rows:
            try:
                monitor = self._upsert_monitor(c, ck, now)
                if monitor is None:
                    upsert_outcomes(c, [(ck.project_id, hour, "intake", "check_in", "too_many_monitors", 1)])
                    continue
                self._record_checkin(c, monitor, ck, now)
            except _PYTHON_ERRORS:
                # A defect here must not stall the digest (nor send the envelope to dead_letters):
                # logged and counted. Database errors propagate, and the batch is retried.
                log.exception("check-in of monitor %r could not be recorded", ck.slug)
                upsert_outcomes(c, [(ck.project_id, hour, "intake", "check_in", "failed", 1)])

    def _upsert_monitor(self, c: Cursor, ck: CheckInRow, now: float) -> Monitor | None:
        row = c.one(
            f"SELECT {_MONITOR_COLUMNS} FROM monitors WHERE project_id = ? AND slug = ?",
            (ck.project_id, ck.slug),
        )
        cfg = ck.config
        if row is None:
            count = int(c.one("SELECT COUNT(*) FROM monitors WHERE project_id = ?", (ck.project_id,))[0])
            if count >= MAX_MONITORS_PER_PROJECT:
                return None
            row = c.one(
                "INSERT INTO monitors (project_id, slug, schedule, timezone, checkin_margin, max_runtime,"
                " environment, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, slug) DO NOTHING"
                f" RETURNING {_MONITOR_COLUMNS}",
                (
                    ck.project_id,
                    ck.slug,
                    json.dumps(cfg["schedule"]) if cfg else None,
                    cfg["timezone"] if cfg else "UTC",
                    cfg["checkin_margin"] if cfg else _cron.DEFAULT_MARGIN,
                    cfg["max_runtime"] if cfg else _cron.DEFAULT_MAX_RUNTIME,
                    ck.environment,
                    ck.status,
                    now,
                ),
            )
            if row is None:  # created by another process meanwhile
                row = c.one(
                    f"SELECT {_MONITOR_COLUMNS} FROM monitors WHERE project_id = ? AND slug = ?",
                    (ck.project_id, ck.slug),
                )
        elif cfg is not None:
            row = c.one(
                "UPDATE monitors SET schedule = ?, timezone = ?, checkin_margin = ?, max_runtime = ?,"
                f" environment = COALESCE(?, environment) WHERE id = ? RETURNING {_MONITOR_COLUMNS}",
                (
                    json.dumps(cfg["schedule"]),
                    cfg["timezone"],
                    cfg["checkin_margin"],
                    cfg["max_runtime"],
                    ck.environment,
                    row[0],
                ),
            )
        return _monitor(row)

    def _record_checkin(self, c: Cursor, m: Monitor, ck: CheckInRow, now: float) -> None:
        existing = c.one(
            "SELECT status, started_at FROM monitor_checkins WHERE monitor_id = ? AND check_in_id = ?",
            (m.id, ck.check_in_id),
        )
        if existing is None:
            c.ex(
                "INSERT INTO monitor_checkins (monitor_id, check_in_id, status, duration, environment,"
                " release, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    m.id,
                    ck.check_in_id,
                    ck.status,
                    ck.duration,
                    ck.environment,
                    ck.release,
                    ck.timestamp - (ck.duration or 0.0) if ck.status != "in_progress" else ck.timestamp,
                    now,
                ),
            )
            started = ck.timestamp if ck.status == "in_progress" else ck.timestamp - (ck.duration or 0.0)
            self._prune_checkins(c, m.id)
        else:
            if existing[0] != "in_progress":
                return  # a run that was closed (or timed out) stays as it was decided
            c.ex(
                "UPDATE monitor_checkins SET status = ?, duration = ?, updated_at = ?"
                " WHERE monitor_id = ? AND check_in_id = ?",
                (ck.status, ck.duration, now, m.id, ck.check_in_id),
            )
            started = float(existing[1])
        # The next run is expected one period after this one started, not after it finished.
        due = _cron.next_expected(m.schedule, m.timezone, started) if existing is None else m.next_expected
        c.ex(
            "UPDATE monitors SET status = ?, last_checkin = ?, next_expected = ? WHERE id = ?",
            (ck.status, ck.timestamp, due, m.id),
        )
        if ck.status == "error":
            self._monitor_failed(c, m, "error", now)
        elif ck.status == "ok":
            self._monitor_recovered(c, m, now)

    # -- the clock ---------------------------------------------------------------------------

    def monitor_tick(self, now: float) -> int:
        """Mark missed check-ins and timed-out runs as of ``now``; return how many were marked.

        Runs in one process at a time (an advisory lock on PostgreSQL): others skip the tick.
        """
        marked = 0
        with self.db.tx() as c:
            if self.db.backend == "postgresql":
                got = c.one(f"SELECT pg_try_advisory_xact_lock({SCOPED_KEY})", (_CLOCK_LOCK,))
                if not got or not got[0]:
                    return 0  # another collector process is ticking right now
            for row in c.all(
                f"SELECT {_MONITOR_COLUMNS} FROM monitors WHERE next_expected IS NOT NULL"
                " AND next_expected + checkin_margin * 60 <= ? ORDER BY id",
                (now,),
            ):
                try:
                    m = _monitor(row)
                    assert m.next_expected is not None
                    due = m.next_expected
                    # One miss per tick, however long the collector was down.
                    nxt = _cron.next_after_miss(m.schedule, m.timezone, due, now, m.checkin_margin * 60)
                except _PYTHON_ERRORS:
                    # A damaged monitor row must not stop the clock for all the others.
                    log.exception(
                        "monitor %s cannot be scheduled; it is not watched until it checks in", row[0]
                    )
                    c.ex("UPDATE monitors SET next_expected = NULL WHERE id = ?", (row[0],))
                    continue
                c.ex(
                    "INSERT INTO monitor_checkins (monitor_id, check_in_id, status, duration, environment,"
                    " release, started_at, updated_at) VALUES (?, ?, 'missed', NULL, ?, NULL, ?, ?)",
                    (m.id, uuid.uuid4().hex, m.environment, due, now),
                )
                c.ex(
                    "UPDATE monitors SET status = 'missed', next_expected = ?"
                    " WHERE id = ? AND next_expected = ?",
                    (nxt, m.id, due),
                )
                self._monitor_failed(c, m, "missed", now)
                self._prune_checkins(c, m.id)
                marked += 1
            for row in c.all(
                f"SELECT ck.id, {', '.join('m.' + x.strip() for x in _MONITOR_COLUMNS.split(','))}"
                " FROM monitor_checkins ck JOIN monitors m ON m.id = ck.monitor_id"
                " WHERE ck.status = 'in_progress' AND ck.started_at + m.max_runtime * 60 <= ?"
                " ORDER BY ck.id",
                (now,),
            ):
                try:
                    m = _monitor(row[1:])
                except _PYTHON_ERRORS:
                    log.exception("monitor %s is damaged; its run %s is left as it is", row[1], row[0])
                    continue
                c.ex(
                    "UPDATE monitor_checkins SET status = 'timeout', updated_at = ? WHERE id = ?",
                    (now, row[0]),
                )
                c.ex("UPDATE monitors SET status = 'timeout' WHERE id = ?", (m.id,))
                self._monitor_failed(c, m, "timeout", now)
                marked += 1
        return marked

    def _prune_checkins(self, c: Cursor, monitor_id: int) -> None:
        """Keep the monitor's last check-ins (a DSN holder could otherwise add rows without end)."""
        row = c.one(
            "SELECT id FROM monitor_checkins WHERE monitor_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (monitor_id, CHECKINS_PER_MONITOR),
        )
        if row is not None:
            c.ex("DELETE FROM monitor_checkins WHERE monitor_id = ? AND id <= ?", (monitor_id, row[0]))

    # -- the monitor's issue and its alerts --------------------------------------------------

    def _monitor_failed(self, c: Cursor, m: Monitor, status: str, now: float) -> None:
        what = _WHAT[status]
        title = f"Cron monitor {m.slug}: {what}"
        grouping_hash = f"monitor:{m.slug}"
        row = c.one(
            "SELECT id, status FROM issues WHERE project_id = ? AND grouping_hash = ?",
            (m.project_id, grouping_hash),
        )
        if row is None:
            issue_id = c.one(
                "INSERT INTO issues (project_id, grouping_version, grouping_hash, grouping_explanation,"
                " title, culprit, type, value, level, first_seen, last_seen, event_count)"
                " VALUES (?, 'monitor', ?, ?, ?, ?, 'MonitorFailure', ?, 'error', ?, ?, 1) RETURNING id",
                (
                    m.project_id,
                    grouping_hash,
                    json.dumps(
                        {
                            "strategy": "monitor",
                            "components": [{"monitor": m.slug}],
                            "description": "one issue per cron monitor",
                        }
                    ),
                    title,
                    m.slug,
                    what,
                    now,
                    now,
                ),
            )[0]
            c.ex(
                "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, 'first_seen', ?)",
                (issue_id, now, f"monitor {what}"),
            )
        else:
            issue_id, was = row
            c.ex(
                "UPDATE issues SET title = ?, value = ?, last_seen = ?, event_count = event_count + 1,"
                " status = CASE WHEN status = 'ignored' THEN status ELSE 'unresolved' END,"
                " regressed = CASE WHEN status = 'resolved' THEN 1 ELSE regressed END WHERE id = ?",
                (title, what, now, issue_id),
            )
            if was == "resolved":
                c.ex(
                    "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, 'regressed', ?)",
                    (issue_id, now, f"monitor {what}"),
                )
        c.ex("UPDATE monitors SET issue_id = ? WHERE id = ?", (issue_id, m.id))
        for rule in self.alerts.rules_for(c, [m.project_id], ["cron"]):
            if rule.filters.environment and rule.filters.environment != m.environment:
                continue
            item = {
                "subject": f"monitor:{m.slug}",
                "issue_id": issue_id,
                "monitor": m.slug,
                "status": status,
                "title": title,
                "environment": m.environment,
            }
            self.alerts.notify(c, rule, issue_id, item, now)

    def _monitor_recovered(self, c: Cursor, m: Monitor, now: float) -> None:
        if m.issue_id is None:
            return
        row = c.one(
            "UPDATE issues SET status = 'resolved', regressed = 0 WHERE id = ? AND status = 'unresolved'"
            " RETURNING id",
            (m.issue_id,),
        )
        if row is not None:
            c.ex(
                "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, 'resolved', ?)",
                (m.issue_id, now, "monitor checked in ok"),
            )


__all__ = ["Monitors"]
