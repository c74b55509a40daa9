"""The SQL both backends share; :mod:`.sqlite` and :mod:`.postgres` add connections and dialect.

SQL here uses ``?`` placeholders; the PostgreSQL store rewrites them to ``%s`` once per statement.
"""

from __future__ import annotations

import abc
import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .. import _json
from .. import secrets as _secrets
from ..versions import is_at_or_after
from .base import (
    Attachment,
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
    User,
)
from .batch import DigestedEvent, EnvelopeResult, Processor
from .migrations import migrations

_ISSUE_COLUMNS = (
    "id, project_id, grouping_version, grouping_hash, grouping_explanation, title, culprit, type,"
    " value, level, status, resolved_in_release, regressed, first_seen, last_seen, event_count,"
    " first_release, last_release"
)
_EVENT_COLUMNS = (
    "id, project_id, event_id, issue_id, timestamp, received_at, level, title, release,"
    " environment, grouping_hash"
)
_ATTACHMENT_COLUMNS = "id, project_id, event_id, filename, content_type, attachment_type, size, received_at"
_PROJECT_COLUMNS = "id, name, public_key, created_at, quota_per_minute, retention_days, retention_max_events"


def _hour(ts: float) -> float:
    return float(int(ts // 3600) * 3600)


def _issue(row: Sequence[Any]) -> Issue:
    return Issue(
        id=row[0],
        project_id=row[1],
        grouping_version=row[2],
        grouping_hash=row[3],
        grouping_explanation=json.loads(row[4]),
        title=row[5],
        culprit=row[6],
        type=row[7],
        value=row[8],
        level=row[9],
        status=row[10],
        resolved_in_release=row[11],
        regressed=bool(row[12]),
        first_seen=row[13],
        last_seen=row[14],
        event_count=row[15],
        first_release=row[16],
        last_release=row[17],
    )


def _project(row: Sequence[Any]) -> Project:
    return Project(*row)


def _user(row: Sequence[Any]) -> User:
    return User(id=row[0], username=row[1], is_admin=bool(row[2]), created_at=row[3])


class Cursor:
    """A thin wrapper over a DB-API cursor: placeholder translation and small fetch helpers."""

    def __init__(self, raw: Any, translate: Any) -> None:
        self.raw = raw
        self._translate = translate

    def ex(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self._translate(sql), tuple(params))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(self._translate(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.ex(sql, params)
        return self.raw.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.ex(sql, params)
        return list(self.raw.fetchall())


class SQLStore(Store):
    """Shared implementation of :class:`Store` over a DB-API connection pool."""

    #: SQL names of the two-argument min/max functions.
    _least = "MIN"
    _greatest = "MAX"

    def __init__(self) -> None:
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all_connections: list[Any] = []
        self._pool_lock = threading.Lock()
        self._closed = False

    # -- dialect hooks -----------------------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection."""

    @abc.abstractmethod
    def _begin(self, raw: Any, write: bool) -> None:
        """Start a transaction on a raw cursor."""

    @abc.abstractmethod
    def _commit(self, conn: Any, raw: Any) -> None: ...

    @abc.abstractmethod
    def _rollback(self, conn: Any, raw: Any) -> None: ...

    def _translate(self, sql: str) -> str:
        return sql

    @abc.abstractmethod
    def _migration_lock(self, c: Cursor) -> None:
        """Serialize migrations between processes (called inside the migration transaction)."""

    # -- connections -------------------------------------------------------------------------

    def _acquire(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
            with self._pool_lock:
                self._all_connections.append(conn)
            return conn

    def _release(self, conn: Any, broken: bool) -> None:
        if broken or self._closed:
            with self._pool_lock:
                if conn in self._all_connections:
                    self._all_connections.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()
            return
        self._pool.put(conn)

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[Cursor]:
        conn = self._acquire()
        raw = conn.cursor()
        broken = False
        try:
            self._begin(raw, write)
            yield Cursor(raw, self._translate)
            self._commit(conn, raw)
        except BaseException:
            try:
                self._rollback(conn, raw)
            except Exception:
                broken = True
            raise
        finally:
            with contextlib.suppress(Exception):
                raw.close()
            self._release(conn, broken)

    def close(self) -> None:
        self._closed = True
        with self._pool_lock:
            conns, self._all_connections = self._all_connections, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

    # -- migrations and settings -------------------------------------------------------------

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
                c.ex(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
                applied.append(version)
        return applied

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

    # -- users -------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, *, is_admin: bool = False) -> User:
        if not username:
            raise StoreError("a user needs a name")
        hashed = _secrets.hash_password(password)
        with self._tx() as c:
            if c.one("SELECT 1 FROM users WHERE username = ?", (username,)):
                raise StoreError(f"user {username!r} already exists")
            row = c.one(
                "INSERT INTO users (username, password_hash, is_admin, created_at)"
                " VALUES (?, ?, ?, ?) RETURNING id, username, is_admin, created_at",
                (username, hashed, int(is_admin), time.time()),
            )
        return _user(row)

    def set_password(self, username: str, password: str) -> None:
        hashed = _secrets.hash_password(password)
        with self._tx() as c:
            row = c.one(
                "UPDATE users SET password_hash = ? WHERE username = ? RETURNING id",
                (hashed, username),
            )
            if row is None:
                raise NotFound(f"no user {username!r}")
            c.ex("DELETE FROM web_sessions WHERE user_id = ?", (row[0],))

    def list_users(self) -> list[User]:
        with self._tx(write=False) as c:
            rows = c.all("SELECT id, username, is_admin, created_at FROM users ORDER BY username")
        return [_user(r) for r in rows]

    def get_user(self, username: str) -> User:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT id, username, is_admin, created_at FROM users WHERE username = ?",
                (username,),
            )
        if row is None:
            raise NotFound(f"no user {username!r}")
        return _user(row)

    def verify_password(self, username: str, password: str) -> User | None:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT id, username, is_admin, created_at, password_hash FROM users WHERE username = ?",
                (username,),
            )
        if row is None:
            # Spend the same time as a real check so that user names cannot be probed.
            _secrets.check_password(password, _DUMMY_HASH)
            return None
        return _user(row) if _secrets.check_password(password, row[4]) else None

    def create_web_session(self, user_id: int, ttl: float = 14 * 86400) -> str:
        token = _secrets.new_token("tws_")
        now = time.time()
        with self._tx() as c:
            c.ex("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
            c.ex(
                "INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (_secrets.token_hash(token), user_id, now, now + ttl),
            )
        return token

    def get_web_session_user(self, token: str) -> User | None:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM web_sessions s"
                " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
                (_secrets.token_hash(token), time.time()),
            )
        return None if row is None else _user(row)

    def delete_web_session(self, token: str) -> None:
        with self._tx() as c:
            c.ex("DELETE FROM web_sessions WHERE token_hash = ?", (_secrets.token_hash(token),))

    def create_api_token(self, user_id: int, name: str = "") -> str:
        token = _secrets.new_token("tw_")
        with self._tx() as c:
            c.ex(
                "INSERT INTO api_tokens (token_hash, user_id, name, created_at) VALUES (?, ?, ?, ?)",
                (_secrets.token_hash(token), user_id, name, time.time()),
            )
        return token

    def verify_api_token(self, token: str) -> User | None:
        with self._tx(write=False) as c:
            row = c.one(
                "SELECT u.id, u.username, u.is_admin, u.created_at FROM api_tokens t"
                " JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
                (_secrets.token_hash(token),),
            )
        return None if row is None else _user(row)

    # -- projects ----------------------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        name = name.strip()
        if not name:
            raise StoreError("a project needs a name")
        with self._tx() as c:
            if c.one("SELECT 1 FROM projects WHERE name = ?", (name,)):
                raise StoreError(f"project {name!r} already exists")
            row = c.one(
                f"INSERT INTO projects (name, public_key, created_at) VALUES (?, ?, ?)"
                f" RETURNING {_PROJECT_COLUMNS}",
                (name, _secrets.new_public_key(), time.time()),
            )
        return _project(row)

    def list_projects(self) -> list[Project]:
        with self._tx(write=False) as c:
            rows = c.all(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY id")
        return [_project(r) for r in rows]

    def get_project(self, id_or_name: int | str) -> Project:
        with self._tx(write=False) as c:
            row = None
            if isinstance(id_or_name, int) or str(id_or_name).isdigit():
                row = c.one(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", (int(id_or_name),))
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
    ) -> Project:
        changes = {
            "quota_per_minute": quota_per_minute,
            "retention_days": retention_days,
            "retention_max_events": retention_max_events,
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
                c.ex(
                    "INSERT INTO ingest_queue (project_id, received_at, kind, body, remote_addr)"
                    " VALUES " + ",".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
                    params,
                )

    def queue_depth(self) -> int:
        with self._tx(write=False) as c:
            row = c.one("SELECT COUNT(*) FROM ingest_queue")
        return int(row[0])

    def add_outcomes(self, rows: Sequence[tuple[int, float, str, str, str, int]]) -> None:
        if not rows:
            return
        with self._tx() as c:
            self._upsert_outcomes(c, sorted(rows))

    def _upsert_outcomes(self, c: Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
        c.many(
            "INSERT INTO outcomes (project_id, hour, source, category, reason, quantity)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, hour, source, category, reason)"
            " DO UPDATE SET quantity = outcomes.quantity + excluded.quantity",
            rows,
        )

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

    def _write_results(self, c: Cursor, results: list[EnvelopeResult]) -> None:
        """Delete the claimed queue rows and store what they produced, in the caller's transaction."""
        ids = [r.queue_id for r in results]
        owned: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            owned.update(
                row[0] for row in c.all(f"DELETE FROM ingest_queue WHERE id IN ({marks}) RETURNING id", chunk)
            )
        # Another process may have digested some rows first (SQLite offers no SKIP LOCKED): those
        # were not deleted by us, so their results are not ours to write.
        mine = [r for r in results if r.queue_id in owned]
        _BatchWriter(self, c).write(mine)

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
                (project_id, issue_id or 0, _hour(since), until),
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
                f"SELECT {_ATTACHMENT_COLUMNS}, data FROM attachments WHERE project_id = ? AND id = ?",
                (project_id, attachment_id),
            )
        if row is None:
            raise NotFound(f"no attachment {attachment_id}")
        return Attachment(*row[:8]), bytes(row[8])

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
        params: list[Any] = [project_id, _hour(since)]
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
                (project_id, source, _hour(since)),
            )
        return [OutcomeCount(r[0], r[1], int(r[2])) for r in rows]

    # -- retention ---------------------------------------------------------------------------

    def apply_retention(
        self, *, default_days: int, default_max_events: int, now: float, chunk: int = 5000
    ) -> int:
        deleted = 0
        for project in self.list_projects():
            days = project.retention_days if project.retention_days is not None else default_days
            cap = (
                project.retention_max_events
                if project.retention_max_events is not None
                else default_max_events
            )
            if days > 0:
                cutoff = now - days * 86400
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
                            (project.id, _hour(cutoff)),
                        )
                    c.ex(
                        "DELETE FROM attachments WHERE project_id = ? AND received_at < ?",
                        (project.id, cutoff),
                    )
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

    def _delete_events_chunked(self, select: str, params: tuple[Any, ...], chunk: int) -> int:
        total = 0
        while True:
            # Small transactions: the ingest writer waits for the write lock at most one chunk.
            with self._tx() as c:
                ids = [r[0] for r in c.all(select, (*params, chunk))]
                if ids:
                    marks = ",".join("?" * len(ids))
                    c.ex(
                        "DELETE FROM attachments WHERE (project_id, event_id) IN"
                        f" (SELECT project_id, event_id FROM events WHERE id IN ({marks}))",
                        ids,
                    )
                    c.ex(f"DELETE FROM events WHERE id IN ({marks})", ids)
            total += len(ids)
            if len(ids) < chunk:
                return total

    def digest_batch(self, limit: int, processor: Any) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _insert_returning(self, c: Cursor, sql: str, rows: list[tuple[Any, ...]]) -> list[bool]:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per row; which ones inserted."""
        return [c.one(sql, row) is not None for row in rows]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _event(row: Sequence[Any]) -> Event:
    data = _json.unpack_event(bytes(row[11]))
    summary = EventSummary(*row[:11])
    return Event(**{**summary.__dict__, "data": data})


# A valid hash of a random password, used to make unknown-user logins as slow as real ones.
_DUMMY_HASH = _secrets.hash_password(_secrets.new_token(""))


class _BatchWriter:
    """Writes the records of one digested batch: events, issues and every counter.

    Rows are touched in a fixed order (issues by key, then counters by key) so that several
    PostgreSQL processes writing at once cannot deadlock each other.
    """

    def __init__(self, store: SQLStore, c: Cursor) -> None:
        self.s = store
        self.c = c

    def write(self, results: list[EnvelopeResult]) -> None:
        c = self.c
        now = time.time()
        outcomes: dict[tuple[int, float, str, str, str], int] = {}

        def count(project_id: int, category: str, reason: str, n: int = 1) -> None:
            key = (project_id, _hour(now), "intake", category, reason)
            outcomes[key] = outcomes.get(key, 0) + n

        events: list[DigestedEvent] = []
        seen: set[tuple[int, str]] = set()
        for result in results:
            for o in result.outcomes:
                key = (o.project_id, o.hour, o.source, o.category, o.reason)
                outcomes[key] = outcomes.get(key, 0) + o.quantity
            for event in result.events:
                if (event.project_id, event.event_id) in seen:
                    count(event.project_id, "event", "duplicate")
                    continue
                seen.add((event.project_id, event.event_id))
                events.append(event)

        issues = self._issues(events, now)
        stored = self._events(events, issues, count)
        self._counters(stored, issues, now)
        self._sessions(results)
        for result in results:
            c.many(
                "INSERT INTO attachments (project_id, event_id, filename, content_type,"
                " attachment_type, size, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.project_id,
                        a.event_id,
                        a.filename,
                        a.content_type,
                        a.attachment_type,
                        len(a.data),
                        a.data,
                        a.received_at,
                    )
                    for a in result.attachments
                ],
            )
        self.s._upsert_outcomes(c, sorted((*k, v) for k, v in outcomes.items()))

    def _issues(self, events: list[DigestedEvent], now: float) -> dict[tuple[int, str], list[Any]]:
        """Find or create the issue of every grouping key: key -> [id, status, resolved_in]."""
        c = self.c
        first: dict[tuple[int, str], DigestedEvent] = {}
        for event in events:
            first.setdefault((event.project_id, event.grouping_hash), event)
        issues: dict[tuple[int, str], list[Any]] = {}
        for key in sorted(first):
            e = first[key]
            row = c.one(
                "INSERT INTO issues (project_id, grouping_version, grouping_hash,"
                " grouping_explanation, title, culprit, type, value, level, first_seen, last_seen,"
                " first_release, last_release)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, grouping_hash) DO NOTHING"
                " RETURNING id, status, resolved_in_release",
                (
                    e.project_id,
                    e.grouping_version,
                    e.grouping_hash,
                    json.dumps(e.grouping_explanation),
                    e.title,
                    e.culprit,
                    e.type,
                    e.value,
                    e.level,
                    e.timestamp,
                    e.timestamp,
                    e.release,
                    e.release,
                ),
            )
            if row is not None:
                c.ex(
                    "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                    (row[0], now, "first_seen", f"event {e.event_id}"),
                )
            else:
                row = c.one(
                    "SELECT id, status, resolved_in_release FROM issues"
                    " WHERE project_id = ? AND grouping_hash = ?",
                    key,
                )
            issues[key] = list(row)
        return issues

    def _events(
        self,
        events: list[DigestedEvent],
        issues: dict[tuple[int, str], list[Any]],
        count: Any,
    ) -> list[tuple[DigestedEvent, int]]:
        c = self.c
        stored: list[tuple[DigestedEvent, int]] = []
        # Arrival order, so that row ids order events as they came. Two processes inserting the
        # same event ids in opposite orders could deadlock; PostgreSQL then aborts one of them
        # and its digester retries the whole batch.
        rows = [
            (
                e.project_id,
                e.event_id,
                issues[(e.project_id, e.grouping_hash)][0],
                e.timestamp,
                e.received_at,
                e.level,
                e.title,
                e.release,
                e.environment,
                e.grouping_hash,
                e.data,
            )
            for e in events
        ]
        inserted = self.s._insert_returning(
            c,
            "INSERT INTO events (project_id, event_id, issue_id, timestamp, received_at,"
            " level, title, release, environment, grouping_hash, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, event_id) DO NOTHING RETURNING id",
            rows,
        )
        for e, row, done in zip(events, rows, inserted, strict=True):
            if done:
                count(e.project_id, "event", "accepted")
                stored.append((e, row[2]))
            else:
                count(e.project_id, "event", "duplicate")
        return stored

    def _counters(
        self,
        stored: list[tuple[DigestedEvent, int]],
        issues: dict[tuple[int, str], list[Any]],
        now: float,
    ) -> None:
        c = self.c
        least, greatest = self.s._least, self.s._greatest
        per_issue: dict[int, list[Any]] = {}
        tags: dict[tuple[int, str, str], list[float]] = {}
        hourly: dict[tuple[int, int, float], int] = {}
        releases: dict[tuple[int, str], list[float]] = {}
        by_id = {v[0]: v for v in issues.values()}
        regress: dict[int, str] = {}
        for e, issue_id in stored:
            agg = per_issue.setdefault(issue_id, [0, e.timestamp, e.timestamp, None, 0.0])
            agg[0] += 1
            agg[1] = min(agg[1], e.timestamp)
            agg[2] = max(agg[2], e.timestamp)
            if e.release and e.received_at >= agg[4]:
                agg[3], agg[4] = e.release, e.received_at
            for key, value in e.tags:
                t = tags.setdefault((issue_id, key, value), [0, e.timestamp, e.timestamp])
                t[0] += 1
                t[1] = min(t[1], e.timestamp)
                t[2] = max(t[2], e.timestamp)
            hour = _hour(e.received_at)
            for k in ((e.project_id, issue_id, hour), (e.project_id, 0, hour)):
                hourly[k] = hourly.get(k, 0) + 1
            if e.release:
                r = releases.setdefault((e.project_id, e.release), [0, e.timestamp, e.timestamp])
                r[0] += 1
                r[1] = min(r[1], e.timestamp)
                r[2] = max(r[2], e.timestamp)
            _id, status, resolved_in = by_id[issue_id]
            if status == "resolved" and issue_id not in regress:
                if resolved_in is None:
                    regress[issue_id] = f"event {e.event_id}"
                elif e.release and is_at_or_after(e.release, resolved_in):
                    regress[issue_id] = f"event {e.event_id} in release {e.release}"
        c.many(
            f"UPDATE issues SET event_count = event_count + ?,"
            f" first_seen = {least}(first_seen, ?), last_seen = {greatest}(last_seen, ?),"
            f" last_release = COALESCE(?, last_release) WHERE id = ?",
            [(a[0], a[1], a[2], a[3], i) for i, a in sorted(per_issue.items())],
        )
        for issue_id, detail in sorted(regress.items()):
            c.ex(
                "UPDATE issues SET status = 'unresolved', regressed = 1, resolved_in_release = NULL"
                " WHERE id = ?",
                (issue_id,),
            )
            c.ex(
                "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                (issue_id, now, "regressed", detail),
            )
        c.many(
            "INSERT INTO issue_tags (issue_id, key, value, count, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (issue_id, key, value) DO UPDATE SET"
            f" count = issue_tags.count + excluded.count,"
            f" last_seen = {greatest}(issue_tags.last_seen, excluded.last_seen)",
            [(*k, *v) for k, v in sorted(tags.items())],
        )
        c.many(
            "INSERT INTO hourly_counts (project_id, issue_id, hour, count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (project_id, issue_id, hour)"
            " DO UPDATE SET count = hourly_counts.count + excluded.count",
            [(*k, v) for k, v in sorted(hourly.items())],
        )
        self._releases(releases)

    def _releases(self, releases: dict[tuple[int, str], list[float]]) -> None:
        least, greatest = self.s._least, self.s._greatest
        self.c.many(
            "INSERT INTO releases (project_id, version, first_seen, last_seen, event_count)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, version) DO UPDATE SET"
            " event_count = releases.event_count + excluded.event_count,"
            f" first_seen = {least}(releases.first_seen, excluded.first_seen),"
            f" last_seen = {greatest}(releases.last_seen, excluded.last_seen)",
            [(*k, v[1], v[2], int(v[0])) for k, v in sorted(releases.items())],
        )

    def _sessions(self, results: list[EnvelopeResult]) -> None:
        buckets: dict[tuple[int, str, str, float], list[int]] = {}
        releases: dict[tuple[int, str], list[float]] = {}
        for result in results:
            for s in result.sessions:
                b = buckets.setdefault((s.project_id, s.release, s.environment, s.hour), [0] * 5)
                for i, n in enumerate((s.started, s.healthy, s.errored, s.abnormal, s.crashed)):
                    b[i] += n
                r = releases.setdefault((s.project_id, s.release), [0, s.hour, s.hour])
                r[1] = min(r[1], s.hour)
                r[2] = max(r[2], s.hour)
        self.c.many(
            "INSERT INTO session_counts (project_id, release, environment, hour, started,"
            " healthy, errored, abnormal, crashed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, release, environment, hour) DO UPDATE SET"
            " started = session_counts.started + excluded.started,"
            " healthy = session_counts.healthy + excluded.healthy,"
            " errored = session_counts.errored + excluded.errored,"
            " abnormal = session_counts.abnormal + excluded.abnormal,"
            " crashed = session_counts.crashed + excluded.crashed",
            [(*k, *v) for k, v in sorted(buckets.items())],
        )
        self._releases(releases)


__all__ = ["Cursor", "Processor", "SQLStore"]
