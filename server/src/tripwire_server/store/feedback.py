"""User feedback: the repository that keeps what end users wrote.

Feedback is written by the digest in its transaction; it names an event by id, and its issue is
found when it is read (the event may arrive after the feedback, or never). Each project keeps at
most :data:`MAX_FEEDBACK_PER_PROJECT` pieces (a DSN holder could otherwise fill the disk); retention
removes feedback older than the project's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .database import Cursor, Database
from .feedback_records import Feedback

if TYPE_CHECKING:
    from .digest_records import EnvelopeResult

#: Feedback kept per project: the oldest goes first.
MAX_FEEDBACK_PER_PROJECT = 10_000

_COLUMNS = (
    "f.id, f.project_id, f.message, f.name, f.email, f.event_id,"
    " (SELECT e.issue_id FROM events e WHERE e.project_id = f.project_id AND e.event_id = f.event_id),"
    " f.url, f.source, f.received_at"
)


def _feedback(row: Sequence[Any]) -> Feedback:
    return Feedback(*row)


class UserFeedback:
    """User feedback: written by the digest, read by the API and the pages."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, c: Cursor, results: Sequence[EnvelopeResult]) -> None:
        """Store the batch's feedback in the digest's transaction; keep each project under its cap."""
        rows = [f for r in results for f in r.feedback]
        if not rows:
            return
        c.many(
            "INSERT INTO feedback (project_id, feedback_id, message, name, email, event_id, url, source,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, feedback_id) DO NOTHING",
            [
                (
                    f.project_id,
                    f.feedback_id,
                    f.message,
                    f.name,
                    f.email,
                    f.event_id,
                    f.url,
                    f.source,
                    f.received_at,
                )
                for f in rows
            ],
        )
        for project_id in sorted({f.project_id for f in rows}):
            row = c.one(
                "SELECT id FROM feedback WHERE project_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
                (project_id, MAX_FEEDBACK_PER_PROJECT),
            )
            if row is not None:
                c.ex("DELETE FROM feedback WHERE project_id = ? AND id <= ?", (project_id, row[0]))

    def list_feedback(
        self, project_id: int, *, issue_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> list[Feedback]:
        """Feedback of a project (or of one issue of it), newest first."""
        where, params = "f.project_id = ?", [project_id]
        if issue_id is not None:
            where += " AND f.event_id IN (SELECT e.event_id FROM events e WHERE e.issue_id = ?)"
            params.append(issue_id)
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_COLUMNS} FROM feedback f WHERE {where} ORDER BY f.id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        return [_feedback(r) for r in rows]
