"""Release health and outcomes: releases with their session totals, hourly session buckets, and
the counters of what happened to items (client reports, and the collector's own intake)."""

from __future__ import annotations

from typing import Any

from .base import OutcomeCount, Release, SessionBucket, hour_start
from .database import Database


class Releases:
    """Releases, sessions and outcome counters, as the API and the pages read them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_releases(self, project_id: int) -> list[Release]:
        """Releases seen in events or sessions, newest first, with session totals."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT r.version, r.first_seen, r.last_seen, r.event_count,"
                " COALESCE(SUM(s.started), 0), COALESCE(SUM(s.healthy), 0),"
                " COALESCE(SUM(s.errored), 0), COALESCE(SUM(s.abnormal), 0),"
                " COALESCE(SUM(s.crashed), 0)"
                " FROM releases r LEFT JOIN session_counts s"
                " ON s.project_id = r.project_id AND s.release = r.version"
                " WHERE r.project_id = ?"
                " GROUP BY r.version, r.first_seen, r.last_seen, r.event_count"
                " ORDER BY r.first_seen DESC, r.version DESC",
                (project_id,),
            )
        return [Release(project_id, r[0], r[1], r[2], *(int(x) for x in r[3:])) for r in rows]

    def session_buckets(
        self, project_id: int, *, release: str | None = None, since: float = 0.0
    ) -> list[SessionBucket]:
        """Hourly session outcomes (optionally of one release)."""
        sql = (
            "SELECT release, environment, hour, started, healthy, errored, abnormal, crashed"
            " FROM session_counts WHERE project_id = ? AND hour >= ?"
        )
        params: list[Any] = [project_id, hour_start(since)]
        if release is not None:
            sql += " AND release = ?"
            params.append(release)
        with self.db.tx(write=False) as c:
            rows = c.all(sql + " ORDER BY hour, release, environment", params)
        return [SessionBucket(r[0], r[1], float(r[2]), *(int(x) for x in r[3:])) for r in rows]

    def outcomes(self, project_id: int, *, source: str, since: float = 0.0) -> list[OutcomeCount]:
        """Summed counters: ``source="client"`` is what SDKs reported dropping (client reports);
        ``source="intake"`` is what the collector itself accepted, dropped or rejected."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT category, reason, SUM(quantity) FROM outcomes"
                " WHERE project_id = ? AND source = ? AND hour >= ?"
                " GROUP BY category, reason ORDER BY category, reason",
                (project_id, source, hour_start(since)),
            )
        return [OutcomeCount(r[0], r[1], int(r[2])) for r in rows]
