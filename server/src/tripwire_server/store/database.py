"""The database layer under the SQL store: a pool of DB-API connections, transactions, a thin
cursor, and the few places where SQLite and PostgreSQL differ (the dialect hooks and names).

SQL in the store uses ``?`` placeholders; a dialect rewrites them (:meth:`Database.translate`).
:mod:`.sqlite` and :mod:`.postgres` implement the hooks; everything above them is shared.
"""

from __future__ import annotations

import abc
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .issue_rows import EVENT_INSERT


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


class Database(abc.ABC):
    """Thread-safe access to one database: pooled connections and transactions (:meth:`_tx`)."""

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
    def _tx(self, write: bool = True) -> Iterator[Cursor]:
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

    def insert_events(self, c: Cursor, rows: list[tuple[Any, ...]]) -> list[bool]:
        """Insert event rows (columns of :data:`~.issue_rows.EVENT_INSERT`), skipping event ids the
        project already has (an SDK's retry); which ones were inserted."""
        return self.insert_returning(
            c, EVENT_INSERT + " ON CONFLICT (project_id, event_id) DO NOTHING RETURNING id", rows
        )

    def insert_returning(self, c: Cursor, sql: str, rows: list[tuple[Any, ...]]) -> list[bool]:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per row; which ones inserted."""
        return [c.one(sql, row) is not None for row in rows]
