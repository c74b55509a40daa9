"""Retention: everything the collector deletes because it is old (or too much).

Events past each project's age and count limits (with what only they used: issues, counters,
attachments and their files, feedback), logs, performance data and profiles. Work is done in
small transactions, so that ingest never waits long for the write lock. On PostgreSQL events and
performance data are kept in day partitions, and whole days are dropped rather than deleted row by
row (store/event_partitions.py, store/performance.py).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from .accounts import Accounts
from .base import hour_start
from .database import Cursor, Database
from .logs import LOG_RETENTION_DAYS
from .performance import PARTITIONED
from .queue import IngestQueue

_DAY = 86400


class Retention:
    """The retention sweeps the digester runs now and then."""

    def __init__(self, db: Database, accounts: Accounts, queue: IngestQueue) -> None:
        self.db = db
        #: The projects, with their retention overrides.
        self.accounts = accounts
        #: Whose files a sweep removes when no row names them any more.
        self.queue = queue

    # -- events ------------------------------------------------------------------------------

    def apply_retention(
        self, *, default_days: int, default_max_events: int, now: float, chunk: int = 5000
    ) -> int:
        """Delete events past each project's age/count limits (and what only they used).

        Works in small transactions so ingest is never blocked for long. Returns events deleted.
        """
        deleted = 0
        # Files left by a crash, on the wall clock (``now`` may be a test's future).
        self.queue.sweep_files()
        with self.db.tx() as c:
            c.ex("DELETE FROM logs WHERE timestamp < ?", (now - LOG_RETENTION_DAYS * 86400,))
        projects = self.accounts.list_projects()
        keep = [p.retention_days if p.retention_days is not None else default_days for p in projects]
        # Where events are kept in day partitions (PostgreSQL), whole days go first, then the rows.
        deleted += self.db.drop_expired_events(now, keep, self._free_attachments_before)
        for project in projects:
            days = project.retention_days if project.retention_days is not None else default_days
            cap = (
                project.retention_max_events
                if project.retention_max_events is not None
                else default_max_events
            )
            if days > 0:
                cutoff = self.db.event_retention_cutoff(now, days)
                deleted += self._delete_events_chunked(
                    "SELECT id FROM events WHERE project_id = ? AND received_at < ? LIMIT ?",
                    (project.id, cutoff),
                    chunk,
                )
                with self.db.tx() as c:
                    c.ex(
                        "DELETE FROM issues WHERE project_id = ? AND last_seen < ?",
                        (project.id, cutoff),
                    )
                    for table in ("hourly_counts", "session_counts", "outcomes"):
                        c.ex(
                            f"DELETE FROM {table} WHERE project_id = ? AND hour < ?",
                            (project.id, hour_start(cutoff)),
                        )
                    self._delete_attachments(c, "project_id = ? AND received_at < ?", (project.id, cutoff))
                    c.ex(
                        "DELETE FROM feedback WHERE project_id = ? AND received_at < ?", (project.id, cutoff)
                    )
            if cap > 0:
                with self.db.tx(write=False) as c:
                    row = c.one(
                        "SELECT id FROM events WHERE project_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                        (project.id, cap),
                    )
                if row is not None:
                    deleted += self._delete_events_chunked(
                        "SELECT id FROM events WHERE project_id = ? AND id <= ? LIMIT ?",
                        (project.id, row[0]),
                        chunk,
                    )
        return deleted

    def _delete_events_chunked(self, select: str, params: tuple[Any, ...], chunk: int) -> int:
        total = 0
        while True:
            # Small transactions: the ingest writer waits for the write lock at most one chunk.
            with self.db.tx() as c:
                ids = [r[0] for r in c.all(select, (*params, chunk))]
                if ids:
                    marks = ",".join("?" * len(ids))
                    self._delete_attachments(
                        c,
                        "(project_id, event_id) IN"
                        f" (SELECT project_id, event_id FROM events WHERE id IN ({marks}))",
                        ids,
                    )
                    c.ex(f"DELETE FROM events WHERE id IN ({marks})", ids)
            total += len(ids)
            if len(ids) < chunk:
                return total

    def _free_attachments_before(self, c: Cursor, before: float) -> None:
        """Delete the attachments that arrived before ``before`` (their events' day is dropped)."""
        self._delete_attachments(c, "received_at < ?", (before,))

    def _delete_attachments(self, c: Cursor, where: str, params: Sequence[Any]) -> None:
        """Delete attachments and give their bytes back to their projects' budgets."""
        freed: dict[int, int] = {}
        deleted = c.all(
            f"DELETE FROM attachments WHERE {where} RETURNING project_id, size, data_file", params
        )
        for project_id, size, _file in deleted:
            freed[project_id] = freed.get(project_id, 0) + int(size)
        self.db.remove_after_commit(c, [r[2] for r in deleted if r[2] is not None])
        c.many(
            f"UPDATE attachment_usage SET stored_bytes = {self.db.greatest}(0, stored_bytes - ?),"
            " total_full = 0 WHERE project_id = ?",
            [(n, p) for p, n in sorted(freed.items())],
        )

    # -- performance data and profiles -------------------------------------------------------

    def apply_perf_retention(self, *, rollup_days: int, sample_days: int, now: float) -> int:
        """Drop rollups and samples older than their retention (0 keeps them); return units removed
        (partitions on PostgreSQL, rows on SQLite)."""
        removed = 0
        cutoffs = {
            "perf_rollups": rollup_days,
            "perf_span_ops": rollup_days,
            "perf_samples": sample_days,
        }
        for table, key in PARTITIONED:
            days = cutoffs[table]
            if days <= 0:
                continue
            cutoff = now - days * _DAY
            if self.db.backend == "postgresql":
                removed += self._drop_partitions(table, cutoff)
            else:
                with self.db.tx() as c:
                    removed += len(c.all(f"DELETE FROM {table} WHERE {key} < ? RETURNING 1", (cutoff,)))
        with self.db.tx() as c:
            if sample_days > 0:
                c.ex("DELETE FROM perf_sample_seen WHERE hour < ?", (now - sample_days * _DAY,))
            if rollup_days > 0:
                c.ex("DELETE FROM trace_events WHERE timestamp < ?", (now - rollup_days * _DAY,))
        return removed

    def _drop_partitions(self, table: str, cutoff: float) -> int:
        dropped = 0
        with self.db.tx() as c:
            names = c.all(
                "SELECT child.relname FROM pg_inherits i"
                " JOIN pg_class child ON child.oid = i.inhrelid"
                " JOIN pg_class parent ON parent.oid = i.inhparent"
                " JOIN pg_namespace n ON n.oid = parent.relnamespace"
                " WHERE parent.relname = ? AND n.nspname = current_schema()",
                (table,),
            )
            for (name,) in names:
                suffix = name.rsplit("_p", 1)[-1]
                try:
                    day = _dt.datetime.strptime(suffix, "%Y%m%d").replace(tzinfo=_dt.timezone.utc)
                except ValueError:
                    continue
                if day.timestamp() + _DAY <= cutoff:
                    c.ex(f"DROP TABLE IF EXISTS {name}")
                    dropped += 1
        return dropped

    def apply_profile_retention(self, *, days: int, now: float) -> int:
        """Drop profiles and aggregates older than ``days`` (0 keeps them); return rows removed."""
        if days <= 0:
            return 0
        cutoff = now - days * 86400
        removed = 0
        with self.db.tx() as c:
            for table, column in (
                ("profiles", "hour"),
                ("profile_functions", "hour"),
                ("profile_totals", "hour"),
                ("profile_windows", "end_timestamp"),
            ):
                removed += len(c.all(f"DELETE FROM {table} WHERE {column} < ? RETURNING 1", (cutoff,)))
        return removed
