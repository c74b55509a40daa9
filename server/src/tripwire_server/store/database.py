"""The database layer under the repositories: a pool of DB-API connections, transactions, a thin
cursor, the schema migrations, and the few places where SQLite and PostgreSQL differ (the dialect
hooks and names).

SQL in the repositories uses ``?`` placeholders; a dialect rewrites them (:meth:`Database.translate`).
:mod:`.sqlite` and :mod:`.postgres` implement the hooks; every repository above them is shared, and
holds a reference to its :class:`Database` rather than inheriting from it.
"""

from __future__ import annotations

import abc
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .base import StoreError
from .blob_files import BlobFiles
from .migrations import migrations


class Cursor:
    """A thin wrapper over a DB-API cursor: placeholder translation and small fetch helpers."""

    def __init__(self, raw: Any, translate: Callable[[str], str]) -> None:
        self.raw = raw
        self.translate = translate
        #: Run once the transaction has committed (not if it rolls back): e.g. removing the files
        #: of rows it deleted, which must outlive the rows until then.
        self.after_commit: list[Callable[[], None]] = []

    def ex(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute one statement."""
        return self.raw.execute(self.translate(sql), tuple(params))

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one statement for each of ``rows`` (nothing for none)."""
        if rows:
            self.raw.executemany(self.translate(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query, or None."""
        self.ex(sql, params)
        return self.raw.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a query."""
        self.ex(sql, params)
        return list(self.raw.fetchall())

    def stored_keys(self, table: str, column: str, keys: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
        """Which ``(project_id, id)`` of ``keys`` have a row in ``table`` (``id`` in ``column``)."""
        by_project: dict[int, list[str]] = {}
        for project_id, key in keys:
            by_project.setdefault(project_id, []).append(key)
        found: set[tuple[int, str]] = set()
        for project_id, ids in sorted(by_project.items()):
            # "project_id = ? AND id IN (...)": a lookup in the unique index per id (a row-value
            # IN over VALUES makes SQLite scan the whole table instead), 500 ids a statement.
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {column} FROM {table} WHERE project_id = ? AND {column} IN ({marks})"
                found.update((project_id, r[0]) for r in self.all(sql, [project_id, *chunk]))
        return found


class Database(abc.ABC):
    """Thread-safe access to one database: pooled connections and transactions (:meth:`tx`)."""

    #: "sqlite" or "postgresql".
    backend: str
    #: SQL names of the two-argument min/max functions.
    least = "MIN"
    greatest = "MAX"
    #: What locks a selected row until the transaction ends ("" where the transaction already
    #: holds the whole database, as on SQLite).
    for_update = ""
    #: Errors that mean "this data cannot be stored" (the digest isolates the envelope at fault).
    data_errors: tuple[type[Exception], ...] = (ValueError, TypeError)

    def __init__(self) -> None:
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all_connections: list[Any] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        #: Where large bodies are kept out of the database (SQLite only: store/blob_files.py). The
        #: queue writes them, issues read them, retention removes them: they belong to the database.
        self.files: BlobFiles | None = None
        #: Bytes from which a body goes to :attr:`files` rather than into its row (None: never).
        self.file_from: int | None = None

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

    def translate(self, sql: str) -> str:
        """``sql`` (with ``?`` placeholders) in this dialect."""
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
    def tx(self, write: bool = True) -> Iterator[Cursor]:
        """One transaction (a read-only one unless ``write``): commits on exit, rolls back on error."""
        conn = self._acquire()
        raw = conn.cursor()
        broken = False
        cursor = Cursor(raw, self.translate)
        try:
            self._begin(raw, write)
            yield cursor
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
        for done in cursor.after_commit:
            done()

    def close(self) -> None:
        """Close every connection; the database is not used after this."""
        self._closed = True
        with self._pool_lock:
            conns, self._all_connections = self._all_connections, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

    # -- migrations --------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply pending schema migrations (safe with concurrent processes); the versions applied."""
        applied: list[int] = []
        with self.tx() as c:
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
        """The highest applied migration version."""
        with self.tx(write=False) as c:
            row = c.one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0)

    # -- files beside the database -----------------------------------------------------------

    def read_file(self, name: str) -> bytes:
        """The body a row keeps in the file ``name`` (FileNotFoundError if it is gone)."""
        if self.files is None:
            raise StoreError(f"a row names the file {name!r}, but this store keeps no files")
        return self.files.read(name)

    def remove_after_commit(self, c: Cursor, names: list[str]) -> None:
        """Remove these files once ``c``'s transaction (which dropped their rows) has committed."""
        files = self.files
        if names and files is not None:
            c.after_commit.append(lambda: files.remove(names))

    # -- events: the dialects store them differently -----------------------------------------

    @abc.abstractmethod
    def insert_events(self, c: Cursor, rows: list[tuple[Any, ...]]) -> list[bool]:
        """Insert event rows (columns of :data:`~.issue_rows.EVENT_INSERT`), skipping event ids the
        project already has (an SDK's retry); which ones were inserted."""

    def lock_event_inserts(self, c: Cursor, project_ids: list[int]) -> None:
        """Serialize the event inserts of these projects with other processes' until ``c`` ends
        (where the database cannot refuse a second copy of an event by itself)."""
        return None

    def event_retention_cutoff(self, now: float, days: int) -> float:
        """Events that arrived before this are past a retention of ``days`` days."""
        return now - days * 86400

    def drop_expired_events(
        self, now: float, keep_days: list[int], free_attachments: Callable[[Cursor, float], None]
    ) -> int:
        """Drop whole stretches of events that every project's retention (``keep_days``) has passed,
        calling ``free_attachments(c, before)`` first in the same transaction; how many were dropped.
        Only a database that partitions events by day can (the rest are deleted row by row)."""
        return 0
