"""Issues and their events: grouping results, tags, activity, hourly counts and attachments.

The digest writes them (store/digest_writer.py, in its transaction); this repository reads them
and changes an issue's status.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .. import _json
from .base import (
    Attachment,
    Event,
    EventSummary,
    HourlyCount,
    Issue,
    IssueActivity,
    IssueQuery,
    NotFound,
    StoreError,
    TagCount,
    hour_start,
)
from .database import Database
from .issue_rows import ISSUE_COLUMNS as _ISSUE_COLUMNS
from .issue_rows import issue_from_row as _issue

_EVENT_COLUMNS = (
    "id, project_id, event_id, issue_id, timestamp, received_at, level, title, release,"
    " environment, grouping_hash"
)
_ATTACHMENT_COLUMNS = "id, project_id, event_id, filename, content_type, attachment_type, size, received_at"


class Issues:
    """Issues, events, tags, activity, hourly counts and attachments."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _issue_filter(self, project_id: int, q: IssueQuery) -> tuple[str, list[Any]]:
        where = ["i.project_id = ?"]
        params: list[Any] = [project_id]
        if q.status:
            where.append("i.status = ?")
            params.append(q.status)
        if q.level:
            where.append("i.level = ?")
            params.append(q.level)
        if q.text:
            pattern = "%" + _escape_like(q.text.lower()) + "%"
            where.append("(lower(i.title) LIKE ? ESCAPE '\\' OR lower(i.culprit) LIKE ? ESCAPE '\\')")
            params += [pattern, pattern]
        tags = list(q.tags)
        if q.release:
            tags.append(("release", q.release))
        if q.environment:
            tags.append(("environment", q.environment))
        for key, value in tags:
            where.append(
                "EXISTS (SELECT 1 FROM issue_tags t WHERE t.issue_id = i.id AND t.key = ? AND t.value = ?)"
            )
            params += [key, value]
        return " AND ".join(where), params

    def list_issues(self, project_id: int, query: IssueQuery | None = None) -> list[Issue]:
        """Issues of a project matching ``query``, newest activity first by default."""
        query = query or IssueQuery()
        where, params = self._issue_filter(project_id, query)
        sort = query.sort if query.sort in ("last_seen", "first_seen", "event_count") else "last_seen"
        sql = (
            f"SELECT {', '.join('i.' + c.strip() for c in _ISSUE_COLUMNS.split(','))}"
            f" FROM issues i WHERE {where} ORDER BY i.{sort} DESC, i.id DESC LIMIT ? OFFSET ?"
        )
        with self.db.tx(write=False) as c:
            rows = c.all(sql, [*params, max(0, query.limit), max(0, query.offset)])
        return [_issue(r) for r in rows]

    def count_issues(self, project_id: int, query: IssueQuery | None = None) -> int:
        """How many issues match ``query`` (ignoring limit/offset)."""
        where, params = self._issue_filter(project_id, query or IssueQuery())
        with self.db.tx(write=False) as c:
            row = c.one(f"SELECT COUNT(*) FROM issues i WHERE {where}", params)
        return int(row[0])

    def get_issue(self, issue_id: int) -> Issue:
        """An issue by id. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = c.one(f"SELECT {_ISSUE_COLUMNS} FROM issues WHERE id = ?", (issue_id,))
        if row is None:
            raise NotFound(f"no issue {issue_id}")
        return _issue(row)

    def set_issue_status(
        self, issue_id: int, status: str, *, resolved_in_release: str | None = None
    ) -> Issue:
        """Change an issue's status (unresolved, resolved, ignored); resolving may name a release."""
        if status not in ("unresolved", "resolved", "ignored"):
            raise StoreError(f"unknown status {status!r}: use unresolved, resolved or ignored")
        if resolved_in_release and status != "resolved":
            raise StoreError("resolved_in_release needs status 'resolved'")
        with self.db.tx() as c:
            row = c.one(
                "UPDATE issues SET status = ?, resolved_in_release = ?,"
                " regressed = CASE WHEN ? = 'resolved' THEN 0 ELSE regressed END"
                " WHERE id = ? RETURNING id",
                (status, resolved_in_release or None, status, issue_id),
            )
            if row is None:
                raise NotFound(f"no issue {issue_id}")
            detail = f"in release {resolved_in_release}" if resolved_in_release else ""
            c.ex(
                "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                (issue_id, time.time(), status, detail),
            )
        return self.get_issue(issue_id)

    def issue_tags(self, issue_id: int, limit_per_key: int = 10) -> list[TagCount]:
        """The most frequent values of each tag key on an issue's events."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT key, value, count FROM issue_tags WHERE issue_id = ? ORDER BY key, count DESC, value",
                (issue_id,),
            )
        out: list[TagCount] = []
        per_key: dict[str, int] = {}
        for key, value, count in rows:
            if per_key.get(key, 0) < limit_per_key:
                per_key[key] = per_key.get(key, 0) + 1
                out.append(TagCount(key, value, int(count)))
        return out

    def issue_activity(self, issue_id: int) -> list[IssueActivity]:
        """The history of an issue, oldest first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT issue_id, at, kind, detail FROM issue_activity WHERE issue_id = ? ORDER BY at, id",
                (issue_id,),
            )
        return [IssueActivity(*r) for r in rows]

    def list_events(self, issue_id: int, *, limit: int = 50, offset: int = 0) -> list[EventSummary]:
        """Stored events of an issue, newest first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE issue_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                (issue_id, max(0, limit), max(0, offset)),
            )
        return [EventSummary(*r) for r in rows]

    def latest_event(self, issue_id: int) -> Event | None:
        """The most recent stored event of an issue (None if retention removed them all)."""
        with self.db.tx(write=False) as c:
            row = c.one(
                f"SELECT {_EVENT_COLUMNS}, data FROM events WHERE issue_id = ? ORDER BY id DESC LIMIT 1",
                (issue_id,),
            )
        return None if row is None else _event(row)

    def get_event(self, event_id: str, project_id: int | None = None) -> Event:
        """An event by its 32-hex event_id (in any project when ``project_id`` is None)."""
        event_id = event_id.replace("-", "").lower()
        with self.db.tx(write=False) as c:
            if project_id is None:
                # Through the (project_id, event_id) index, one probe per project.
                row = c.one(
                    f"SELECT {_EVENT_COLUMNS}, data FROM events"
                    " WHERE project_id IN (SELECT id FROM projects) AND event_id = ? LIMIT 1",
                    (event_id,),
                )
            else:
                row = c.one(
                    f"SELECT {_EVENT_COLUMNS}, data FROM events WHERE project_id = ? AND event_id = ?",
                    (project_id, event_id),
                )
        if row is None:
            raise NotFound(f"no event {event_id}")
        return _event(row)

    def count_events(self, project_id: int | None = None) -> int:
        """Stored events (of one project or of all)."""
        with self.db.tx(write=False) as c:
            if project_id is None:
                row = c.one("SELECT COUNT(*) FROM events")
            else:
                row = c.one("SELECT COUNT(*) FROM events WHERE project_id = ?", (project_id,))
        return int(row[0])

    def hourly_counts(
        self, project_id: int, *, issue_id: int | None = None, since: float, until: float
    ) -> list[HourlyCount]:
        """Events digested per hour in ``[since, until)`` (hours without events are omitted)."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT hour, count FROM hourly_counts WHERE project_id = ? AND issue_id = ?"
                " AND hour >= ? AND hour < ? ORDER BY hour",
                (project_id, issue_id or 0, hour_start(since), until),
            )
        return [HourlyCount(float(h), int(n)) for h, n in rows]

    def list_attachments(self, project_id: int, event_id: str) -> list[Attachment]:
        """Attachments stored with an event, oldest first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_ATTACHMENT_COLUMNS} FROM attachments"
                " WHERE project_id = ? AND event_id = ? ORDER BY id",
                (project_id, event_id.replace("-", "").lower()),
            )
        return [Attachment(*r) for r in rows]

    def get_attachment_data(self, project_id: int, attachment_id: int) -> tuple[Attachment, bytes]:
        """An attachment and its bytes. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = c.one(
                f"SELECT {_ATTACHMENT_COLUMNS}, data, data_file FROM attachments"
                " WHERE project_id = ? AND id = ?",
                (project_id, attachment_id),
            )
            if row is None:
                raise NotFound(f"no attachment {attachment_id}")
            try:
                data = bytes(row[8]) if row[9] is None else self.db.read_file(row[9])
            except FileNotFoundError:
                # Retention deleted the row (and then the file) since this transaction began.
                raise NotFound(f"no attachment {attachment_id}") from None
        return Attachment(*row[:8]), data


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _event(row: Sequence[Any]) -> Event:
    data = _json.unpack_event(bytes(row[11]))
    summary = EventSummary(*row[:11])
    return Event(**{**summary.__dict__, "data": data})
