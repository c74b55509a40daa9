"""The SQL both backends share; :mod:`.sqlite` and :mod:`.postgres` add connections and dialect.

SQL here uses ``?`` placeholders; the PostgreSQL store rewrites them to ``%s`` once per statement.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from .. import _json, credentials
from ._accounts import AccountsMixin, db_int
from ._alerts import AlertsMixin
from ._feedback import FeedbackMixin
from ._logs import LogsMixin
from ._monitors import MonitorsMixin
from ._performance import PerformanceMixin
from ._profiles import ProfilesMixin
from ._project_access import ProjectAccessMixin
from .base import (
    Attachment,
    AttachmentUsage,
    Event,
    EventSummary,
    HourlyCount,
    IntakeRow,
    Issue,
    IssueActivity,
    IssueQuery,
    NotFound,
    OutcomeCount,
    Project,
    QueuedEnvelope,
    Release,
    SessionBucket,
    Store,
    StoreError,
    TagCount,
    hour_start,
)
from .blob_files import BlobFiles, orphan_cutoff
from .database import Cursor, Database
from .digest_records import AttachmentBudget, EnvelopeResult, Processor
from .digest_writer import DigestWriter
from .issue_rows import ISSUE_COLUMNS as _ISSUE_COLUMNS
from .issue_rows import issue_from_row as _issue
from .migrations import migrations
from .outcomes import upsert_outcomes

log = logging.getLogger("tripwire_server")

_EVENT_COLUMNS = (
    "id, project_id, event_id, issue_id, timestamp, received_at, level, title, release,"
    " environment, grouping_hash"
)
_ATTACHMENT_COLUMNS = "id, project_id, event_id, filename, content_type, attachment_type, size, received_at"
_PROJECT_COLUMNS = (
    "id, name, public_key, created_at, quota_per_minute, retention_days, retention_max_events,"
    " attachment_bytes_per_hour, attachment_bytes_total"
)


def _project(row: Sequence[Any]) -> Project:
    return Project(*row)


class SQLStore(
    Database,
    AccountsMixin,
    ProjectAccessMixin,
    AlertsMixin,
    FeedbackMixin,
    LogsMixin,
    MonitorsMixin,
    PerformanceMixin,
    ProfilesMixin,
    Store,
):
    """Shared implementation of :class:`Store` over a DB-API connection pool."""

    # -- migrations and settings -------------------------------------------------------------

    def __init__(self) -> None:
        super().__init__()
        #: Attachment bytes this process's digest transactions stored in the database (the
        #: digester paces by it; bytes kept as files do not hold the database's write lock).
        self.attachment_bytes_written = 0
        #: Where large bodies are kept out of the database (SQLite only: store/blob_files.py).
        self.files: BlobFiles | None = None

    def migrate(self) -> list[int]:
        applied: list[int] = []
        with self._tx() as c:
            self._migration_lock(c)
            c.ex(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            done = {row[0] for row in c.all("SELECT version FROM schema_migrations")}
            for version, statements in migrations(self.backend):
                if version in done:
                    continue
                for statement in statements:
                    c.ex(statement)
                self._after_migration(c, version)
                c.ex(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
                applied.append(version)
        return applied

    def _after_migration(self, c: Cursor, version: int) -> None:
        """Data steps of a migration that plain SQL cannot express (a backend may have some)."""
        return None

    def schema_version(self) -> int:
        with self._tx(write=False) as c:
            row = c.one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0)

    def get_setting(self, key: str) -> str | None:
        with self._tx(write=False) as c:
            row = c.one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.ex(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- projects ----------------------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        name = name.strip()
        if not name:
            raise StoreError("a project needs a name")
        # ON CONFLICT rather than check-then-insert: two processes starting at once both create
        # "default", and one of them must simply find it taken.
        with self._tx() as c:
            row = c.one(
                f"INSERT INTO projects (name, public_key, created_at) VALUES (?, ?, ?)"
                f" ON CONFLICT (name) DO NOTHING RETURNING {_PROJECT_COLUMNS}",
                (name, credentials.new_public_key(), time.time()),
            )
            if row is not None:
                c.ex(
                    "INSERT INTO project_keys (public_key, project_id, created_at) VALUES (?, ?, ?)",
                    (row[2], row[0], row[3]),
                )
        if row is None:
            raise StoreError(f"project {name!r} already exists")
        return _project(row)

    def list_projects(self) -> list[Project]:
        with self._tx(write=False) as c:
            rows = c.all(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY id")
        return [_project(r) for r in rows]

    def get_project(self, id_or_name: int | str) -> Project:
        with self._tx(write=False) as c:
            row = None
            ref = str(id_or_name)
            # At most 19 ASCII digits ("²".isdigit() is True but int("²") fails, and int() refuses
            # more than 4300 digits); an id past 2^63 or a name with NUL (PostgreSQL refuses it in
            # text) can match nothing.
            if "\x00" in ref:
                raise NotFound(f"no project {id_or_name!r}")
            if isinstance(id_or_name, int) or (ref.isascii() and ref.isdigit() and len(ref) <= 19):
                with contextlib.suppress(NotFound):
                    row = c.one(
                        f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", (db_int(int(id_or_name)),)
                    )
            if row is None:
                row = c.one(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE name = ?", (str(id_or_name),))
        if row is None:
            raise NotFound(f"no project {id_or_name!r}")
        return _project(row)

    def update_project(
        self,
        project_id: int,
        *,
        quota_per_minute: int | None = None,
        retention_days: int | None = None,
        retention_max_events: int | None = None,
        attachment_bytes_per_hour: int | None = None,
        attachment_bytes_total: int | None = None,
    ) -> Project:
        changes = {
            "quota_per_minute": quota_per_minute,
            "retention_days": retention_days,
            "retention_max_events": retention_max_events,
            "attachment_bytes_per_hour": attachment_bytes_per_hour,
            "attachment_bytes_total": attachment_bytes_total,
        }
        with self._tx() as c:
            for column, value in changes.items():
                if value is None:
                    continue
                c.ex(
                    f"UPDATE projects SET {column} = ? WHERE id = ?",
                    (None if value < 0 else value, project_id),
                )
        return self.get_project(project_id)

    # -- ingest queue ------------------------------------------------------------------------

    def keep_as_file(self, data: bytes) -> str | None:
        if self.files is None or self.file_from is None or len(data) < self.file_from:
            return None
        return self.files.write(data)

    def discard_files(self, names: Sequence[str]) -> None:
        if self.files is not None:
            self.files.remove(names)

    def _read_file(self, name: str) -> bytes:
        if self.files is None:
            raise StoreError(f"a row names the file {name!r}, but this store keeps no files")
        return self.files.read(name)

    def _remove_after_commit(self, c: Cursor, names: list[str]) -> None:
        """Remove these files once ``c``'s transaction (which dropped their rows) has committed."""
        files = self.files
        if names and files is not None:
            c.after_commit.append(lambda: files.remove(names))

    def _attachments_to_files(self, results: list[EnvelopeResult]) -> list[str]:
        """Write the large attachments of ``results`` to files, before the digest's transaction
        takes the write lock; the names written (those whose rows are not stored are removed)."""
        written: list[str] = []
        if self.files is None or self.file_from is None:
            return written
        try:
            for result in results:
                for a in result.attachments:
                    if a.data_file is None and len(a.data) >= self.file_from:
                        a.data_file = self.files.write(a.data)
                        a.data = b""
                        written.append(a.data_file)
        except BaseException:
            self.files.remove(written)
            raise
        return written

    def sweep_files(self, now: float | None = None, age: float | None = None) -> int:
        """Remove files that no queue or attachment row names and that were last written long
        enough ago (a crash between a file and its row, or between a commit and the removal)."""
        if self.files is None:
            return 0
        candidates = self.files.names(orphan_cutoff(now) if age is None else orphan_cutoff(now, age))
        if not candidates:
            return 0
        # Listed before the rows are read: a file whose row commits meanwhile is in the rows.
        with self._tx(write=False) as c:
            referenced = {
                r[0] for r in c.all("SELECT body_file FROM ingest_queue WHERE body_file IS NOT NULL")
            }
            referenced.update(
                r[0] for r in c.all("SELECT data_file FROM attachments WHERE data_file IS NOT NULL")
            )
        removed = self.files.sweep(candidates, referenced)
        if removed:
            log.info("removed %d files no row names", removed)
        return removed

    def enqueue(self, rows: Sequence[IntakeRow]) -> None:
        # One multi-row INSERT per 500 rows rather than executemany: the driver releases the GIL
        # around every statement step, and each release hands the GIL to the event loop thread and
        # back. Fewer, bigger statements keep the intake writer from ping-ponging with it.
        with self._tx() as c:
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                params: list[Any] = []
                for r in chunk:
                    params += (r.project_id, r.received_at, r.kind, r.body, r.remote_addr)
                    params += (r.body_file, r.body_size if r.body_file is not None else None)
                c.ex(
                    "INSERT INTO ingest_queue (project_id, received_at, kind, body, remote_addr,"
                    " body_file, body_size) VALUES " + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                    params,
                )

    def queue_depth(self) -> int:
        with self._tx(write=False) as c:
            row = c.one("SELECT COUNT(*) FROM ingest_queue")
        return int(row[0])

    #: Errors that mean "this data cannot be written", as opposed to "the database is unwell".

    def quarantine(self, queue_id: int, error: str) -> bool:
        now = time.time()
        with self._tx() as c:
            row = c.one(
                "DELETE FROM ingest_queue WHERE id = ?"
                " RETURNING id, project_id, received_at, kind, body, remote_addr, body_file",
                (queue_id,),
            )
            if row is None:
                return False
            *row, body_file = row
            if body_file is not None:
                # Dead letters are rare and kept for a person to look at: in the row, in one place.
                row[4] = self._read_file(body_file)
                self._remove_after_commit(c, [body_file])
            c.ex(
                "INSERT INTO dead_letters (queue_id, project_id, received_at, kind, body,"
                " remote_addr, error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, error[:2000], now),
            )
            upsert_outcomes(
                c, [(row[1], float(int(now // 3600) * 3600), "intake", "envelope", "digest_failed", 1)]
            )
        return True

    def dead_letter_count(self) -> int:
        with self._tx(write=False) as c:
            return int(c.one("SELECT COUNT(*) FROM dead_letters")[0])

    def attachment_usage(self, project_id: int) -> AttachmentUsage:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT hour, hour_bytes, stored_bytes, full_hour, total_full FROM attachment_usage"
                " WHERE project_id = ?",
                (project_id,),
            )
        if row is None:
            return AttachmentUsage(0.0, 0, 0)
        return AttachmentUsage(float(row[0]), int(row[1]), int(row[2]), float(row[3]), bool(row[4]))

    @staticmethod
    def _batch_ids(sized: Sequence[Sequence[Any]], max_bytes: int | None) -> list[int]:
        """Ids of the leading ``(id, stored size)`` rows that fit in ``max_bytes`` (at least one)."""
        ids: list[int] = []
        held = 0
        for queue_id, size in sized:
            if ids and max_bytes is not None and held + int(size or 0) > max_bytes:
                break
            ids.append(queue_id)
            held += int(size or 0)
        return ids

    def _load_queued(self, c: Cursor, ids: list[int]) -> list[QueuedEnvelope]:
        marks = ",".join("?" * len(ids))
        rows = c.all(
            "SELECT id, project_id, received_at, kind, body, remote_addr, body_file FROM ingest_queue"
            f" WHERE id IN ({marks}) ORDER BY id",
            ids,
        )
        out = []
        for r in rows:
            if r[6] is not None:
                try:
                    body = self._read_file(r[6])
                except FileNotFoundError:
                    # Another digester deleted the row and its file since this transaction began
                    # (its DELETE then owns the row, and this result is not written); or the file
                    # was lost: the empty body is then counted as an invalid envelope.
                    log.warning("queued envelope %s: its file %s is gone", r[0], r[6])
                    body = b""
                r = (*r[:4], body, r[5])
            out.append(self._queued(r))
        return out

    def _write_isolated(self, results: list[EnvelopeResult], budget: AttachmentBudget) -> set[str]:
        """After a batch was refused for its data: write each envelope alone, and move aside
        those the database still refuses, so one bad envelope cannot stall all the others.
        Returns the attachment files that rows now name."""
        kept: set[str] = set()
        for result in results:
            try:
                with self._tx() as c:
                    stored = self._write_results(c, [result], budget)
                kept |= stored
            except self.data_errors as exc:
                log.error("envelope %s cannot be stored (%r); moved to dead_letters", result.queue_id, exc)
                self.quarantine(result.queue_id, repr(exc))
        return kept

    def add_outcomes(self, rows: Sequence[tuple[int, float, str, str, str, int]]) -> None:
        if not rows:
            return
        with self._tx() as c:
            upsert_outcomes(c, sorted(rows))

    @staticmethod
    def _queued(row: Sequence[Any]) -> QueuedEnvelope:
        return QueuedEnvelope(
            id=row[0],
            project_id=row[1],
            received_at=row[2],
            kind=row[3],
            body=bytes(row[4]),
            remote_addr=row[5],
        )

    def _write_results(self, c: Cursor, results: list[EnvelopeResult], budget: AttachmentBudget) -> set[str]:
        """Delete the claimed queue rows and store what they produced, in the caller's transaction;
        the attachment files that stored rows name (the caller removes the other ones it wrote)."""
        ids = [r.queue_id for r in results]
        owned: set[int] = set()
        body_files: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in c.all(
                f"DELETE FROM ingest_queue WHERE id IN ({marks}) RETURNING id, body_file", chunk
            ):
                owned.add(row[0])
                if row[1] is not None:
                    body_files.append(row[1])
        self._remove_after_commit(c, body_files)
        # Another process may have digested some rows first (SQLite offers no SKIP LOCKED): those
        # were not deleted by us, so their results are not ours to write.
        mine = [r for r in results if r.queue_id in owned]
        writer = DigestWriter(self, c, budget)
        writer.write(mine)
        self.attachment_bytes_written += writer.attachment_bytes
        # Alerts and cron monitors commit with what caused them (see store/_alerts.py).
        self._write_checkins(c, mine)
        self._write_feedback(c, mine)
        self._write_logs(c, mine)
        self._write_performance(c, mine, writer)
        self._write_profiles(c, mine)
        self._alerts_after_digest(c, writer, mine)
        return writer.files_kept

    # -- issues and events -------------------------------------------------------------------

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
        query = query or IssueQuery()
        where, params = self._issue_filter(project_id, query)
        sort = query.sort if query.sort in ("last_seen", "first_seen", "event_count") else "last_seen"
        sql = (
            f"SELECT {', '.join('i.' + c.strip() for c in _ISSUE_COLUMNS.split(','))}"
            f" FROM issues i WHERE {where} ORDER BY i.{sort} DESC, i.id DESC LIMIT ? OFFSET ?"
        )
        with self._tx(write=False) as c:
            rows = c.all(sql, [*params, max(0, query.limit), max(0, query.offset)])
        return [_issue(r) for r in rows]

    def count_issues(self, project_id: int, query: IssueQuery | None = None) -> int:
        where, params = self._issue_filter(project_id, query or IssueQuery())
        with self._tx(write=False) as c:
            row = c.one(f"SELECT COUNT(*) FROM issues i WHERE {where}", params)
        return int(row[0])

    def get_issue(self, issue_id: int) -> Issue:
        with self._tx(write=False) as c:
            row = c.one(f"SELECT {_ISSUE_COLUMNS} FROM issues WHERE id = ?", (issue_id,))
        if row is None:
            raise NotFound(f"no issue {issue_id}")
        return _issue(row)

    def set_issue_status(
        self, issue_id: int, status: str, *, resolved_in_release: str | None = None
    ) -> Issue:
        if status not in ("unresolved", "resolved", "ignored"):
            raise StoreError(f"unknown status {status!r}: use unresolved, resolved or ignored")
        if resolved_in_release and status != "resolved":
            raise StoreError("resolved_in_release needs status 'resolved'")
        with self._tx() as c:
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
        with self._tx(write=False) as c:
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
        with self._tx(write=False) as c:
            rows = c.all(
                "SELECT issue_id, at, kind, detail FROM issue_activity WHERE issue_id = ? ORDER BY at, id",
                (issue_id,),
            )
        return [IssueActivity(*r) for r in rows]

    def list_events(self, issue_id: int, *, limit: int = 50, offset: int = 0) -> list[EventSummary]:
        with self._tx(write=False) as c:
            rows = c.all(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE issue_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                (issue_id, max(0, limit), max(0, offset)),
            )
        return [EventSummary(*r) for r in rows]

    def latest_event(self, issue_id: int) -> Event | None:
        with self._tx(write=False) as c:
            row = c.one(
                f"SELECT {_EVENT_COLUMNS}, data FROM events WHERE issue_id = ? ORDER BY id DESC LIMIT 1",
                (issue_id,),
            )
        return None if row is None else _event(row)

    def get_event(self, event_id: str, project_id: int | None = None) -> Event:
        event_id = event_id.replace("-", "").lower()
        with self._tx(write=False) as c:
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
        with self._tx(write=False) as c:
            if project_id is None:
                row = c.one("SELECT COUNT(*) FROM events")
            else:
                row = c.one("SELECT COUNT(*) FROM events WHERE project_id = ?", (project_id,))
        return int(row[0])

    def hourly_counts(
        self, project_id: int, *, issue_id: int | None = None, since: float, until: float
    ) -> list[HourlyCount]:
        with self._tx(write=False) as c:
            rows = c.all(
                "SELECT hour, count FROM hourly_counts WHERE project_id = ? AND issue_id = ?"
                " AND hour >= ? AND hour < ? ORDER BY hour",
                (project_id, issue_id or 0, hour_start(since), until),
            )
        return [HourlyCount(float(h), int(n)) for h, n in rows]

    def list_attachments(self, project_id: int, event_id: str) -> list[Attachment]:
        with self._tx(write=False) as c:
            rows = c.all(
                f"SELECT {_ATTACHMENT_COLUMNS} FROM attachments"
                " WHERE project_id = ? AND event_id = ? ORDER BY id",
                (project_id, event_id.replace("-", "").lower()),
            )
        return [Attachment(*r) for r in rows]

    def get_attachment_data(self, project_id: int, attachment_id: int) -> tuple[Attachment, bytes]:
        with self._tx(write=False) as c:
            row = c.one(
                f"SELECT {_ATTACHMENT_COLUMNS}, data, data_file FROM attachments"
                " WHERE project_id = ? AND id = ?",
                (project_id, attachment_id),
            )
            if row is None:
                raise NotFound(f"no attachment {attachment_id}")
            try:
                data = bytes(row[8]) if row[9] is None else self._read_file(row[9])
            except FileNotFoundError:
                # Retention deleted the row (and then the file) since this transaction began.
                raise NotFound(f"no attachment {attachment_id}") from None
        return Attachment(*row[:8]), data

    # -- release health and outcomes ---------------------------------------------------------

    def list_releases(self, project_id: int) -> list[Release]:
        with self._tx(write=False) as c:
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
        sql = (
            "SELECT release, environment, hour, started, healthy, errored, abnormal, crashed"
            " FROM session_counts WHERE project_id = ? AND hour >= ?"
        )
        params: list[Any] = [project_id, hour_start(since)]
        if release is not None:
            sql += " AND release = ?"
            params.append(release)
        with self._tx(write=False) as c:
            rows = c.all(sql + " ORDER BY hour, release, environment", params)
        return [SessionBucket(r[0], r[1], float(r[2]), *(int(x) for x in r[3:])) for r in rows]

    def outcomes(self, project_id: int, *, source: str, since: float = 0.0) -> list[OutcomeCount]:
        with self._tx(write=False) as c:
            rows = c.all(
                "SELECT category, reason, SUM(quantity) FROM outcomes"
                " WHERE project_id = ? AND source = ? AND hour >= ?"
                " GROUP BY category, reason ORDER BY category, reason",
                (project_id, source, hour_start(since)),
            )
        return [OutcomeCount(r[0], r[1], int(r[2])) for r in rows]

    # -- retention ---------------------------------------------------------------------------

    def apply_retention(
        self, *, default_days: int, default_max_events: int, now: float, chunk: int = 5000
    ) -> int:
        deleted = 0
        # Files left by a crash, on the wall clock (``now`` may be a test's future).
        self.sweep_files()
        with self._tx() as c:
            self._logs_retention(c, now)
        for project in self.list_projects():
            days = project.retention_days if project.retention_days is not None else default_days
            cap = (
                project.retention_max_events
                if project.retention_max_events is not None
                else default_max_events
            )
            if days > 0:
                cutoff = self._retention_cutoff(now, days)
                deleted += self._delete_events_chunked(
                    "SELECT id FROM events WHERE project_id = ? AND received_at < ? LIMIT ?",
                    (project.id, cutoff),
                    chunk,
                )
                with self._tx() as c:
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
                    self._feedback_retention(c, project.id, cutoff)
            if cap > 0:
                with self._tx(write=False) as c:
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

    def _retention_cutoff(self, now: float, days: int) -> float:
        """Events that arrived before this are past a retention of ``days`` days."""
        return now - days * 86400

    def _delete_events_chunked(self, select: str, params: tuple[Any, ...], chunk: int) -> int:
        total = 0
        while True:
            # Small transactions: the ingest writer waits for the write lock at most one chunk.
            with self._tx() as c:
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

    def _delete_attachments(self, c: Cursor, where: str, params: Sequence[Any]) -> None:
        """Delete attachments and give their bytes back to their projects' budgets."""
        freed: dict[int, int] = {}
        deleted = c.all(
            f"DELETE FROM attachments WHERE {where} RETURNING project_id, size, data_file", params
        )
        for project_id, size, _file in deleted:
            freed[project_id] = freed.get(project_id, 0) + int(size)
        self._remove_after_commit(c, [r[2] for r in deleted if r[2] is not None])
        c.many(
            f"UPDATE attachment_usage SET stored_bytes = {self.greatest}(0, stored_bytes - ?),"
            " total_full = 0 WHERE project_id = ?",
            [(n, p) for p, n in sorted(freed.items())],
        )

    def digest_batch(self, limit: int, processor: Any) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _event(row: Sequence[Any]) -> Event:
    data = _json.unpack_event(bytes(row[11]))
    summary = EventSummary(*row[:11])
    return Event(**{**summary.__dict__, "data": data})


__all__ = ["Cursor", "Processor", "SQLStore"]
