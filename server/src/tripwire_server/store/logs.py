"""Structured logs: the repository that keeps ``log`` items.

Logs are many and small: they have a retention of their own, independent of events. Each project
keeps at most :data:`MAX_LOGS_PER_PROJECT` records (the oldest go first, checked after every digest
batch) and none older than :data:`LOG_RETENTION_DAYS` days (the retention sweep).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .database import Cursor, Database
from .log_records import LogQuery, LogRecord

if TYPE_CHECKING:
    from .digest_records import EnvelopeResult

MAX_LOGS_PER_PROJECT = 100_000
LOG_RETENTION_DAYS = 7
_COLUMNS = "id, project_id, timestamp, level, body, trace_id, attributes"


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Logs:
    """Log records: written by the digest, read by the API and the pages."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, c: Cursor, results: Sequence[EnvelopeResult]) -> None:
        """Store the batch's log records in the digest's transaction; keep each project under its cap."""
        rows = [r for result in results for r in result.logs]
        if not rows:
            return
        c.many(
            "INSERT INTO logs (project_id, timestamp, received_at, level, body, trace_id, attributes)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (r.project_id, r.timestamp, r.received_at, r.level, r.body, r.trace_id, r.attributes)
                for r in rows
            ],
        )
        for project_id in sorted({r.project_id for r in rows}):
            row = c.one(
                "SELECT id FROM logs WHERE project_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                (project_id, MAX_LOGS_PER_PROJECT),
            )
            if row is not None:
                c.ex("DELETE FROM logs WHERE project_id = ? AND id <= ?", (project_id, row[0]))

    def list_logs(self, project_id: int, query: LogQuery | None = None) -> list[LogRecord]:
        """Log records of a project matching ``query``, newest first."""
        q = query or LogQuery()
        where: list[str] = ["project_id = ?"]
        params: list[Any] = [project_id]
        if q.level:
            where.append("level = ?")
            params.append(q.level)
        if q.trace_id:
            where.append("trace_id = ?")
            params.append(q.trace_id)
        for word in q.text.lower().split():
            where.append("lower(body) LIKE ? ESCAPE '\\'")
            params.append(_like(word))
        for key, value in q.attributes:
            # Attributes are stored as compact JSON with sorted keys: a pair is a fixed substring.
            pair = json.dumps({key: value}, separators=(",", ":"), ensure_ascii=False)[1:-1]
            where.append("attributes LIKE ? ESCAPE '\\'")
            params.append(_like(pair))
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_COLUMNS} FROM logs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*params, q.limit, q.offset],
            )
        return [LogRecord.from_row(r) for r in rows]
