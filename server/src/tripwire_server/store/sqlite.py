"""The SQLite database: one file, WAL journal, stdlib ``sqlite3``; nothing to install."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from .blob_files import FILE_FROM, BlobFiles
from .database import Cursor, Database
from .issue_rows import EVENT_INSERT

_DATA_ERRORS = (ValueError, TypeError, sqlite3.IntegrityError, sqlite3.DataError)

# Bytes the WAL file is cut back to after a checkpoint.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024

# How long a writer waits for the database lock before giving up.
_LOCK_WAIT = 60.0


def _while_locked(run: Any) -> Any:
    """``run()``, again while SQLite answers "locked" or "busy", for up to ``_LOCK_WAIT`` seconds."""
    deadline = time.monotonic() + _LOCK_WAIT
    pause = 0.0002
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.002)


class SQLiteDatabase(Database):
    """A SQLite file in WAL mode.

    Readers never block the writer and vice versa; writers take the lock with ``BEGIN IMMEDIATE``
    so they queue on the busy timeout instead of failing on lock upgrades.
    """

    backend = "sqlite"
    data_errors = _DATA_ERRORS

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = Path(path)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad SQLite synchronous mode {synchronous!r}")
        self._synchronous = synchronous.upper()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if str(path) != ":memory:":
            # One writer at a time: large bodies go to files beside the database, so that no
            # commit waits behind megabytes (store/blob_files.py).
            self.files = BlobFiles(self.path.parent / (self.path.name + "-files"))
            self.file_from = FILE_FROM

    def _connect(self) -> Any:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60.0)
        # Switching a fresh file to WAL can answer "locked" at once, without the busy handler, while
        # another process (collectors starting together) does the same: wait like a writer does.
        _while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA cache_size=-32000")
        # A large transaction (a batch of attachments) grows the WAL file; without a limit it
        # keeps that size on disk for good. Truncate it to this after each checkpoint.
        conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        return conn

    def _begin(self, raw: Any, write: bool) -> None:
        statement = "BEGIN IMMEDIATE" if write else "BEGIN"
        _while_locked(lambda: raw.execute(statement))

    def _commit(self, conn: Any, raw: Any) -> None:
        raw.execute("COMMIT")

    def _rollback(self, conn: Any, raw: Any) -> None:
        if conn.in_transaction:
            raw.execute("ROLLBACK")

    def _migration_lock(self, c: Cursor) -> None:
        # BEGIN IMMEDIATE already holds the database write lock.
        return None

    def insert_events(self, c: Cursor, rows: list[tuple[Any, ...]]) -> list[bool]:
        # (project_id, event_id) are the first two columns. Inside this write transaction nobody
        # else writes, so "not there before" means "inserted".
        if not rows:
            return []
        existing = c.stored_keys("events", "event_id", ((row[0], row[1]) for row in rows))
        out = []
        fresh = []
        seen: set[tuple[int, str]] = set()
        for row in rows:
            key = (row[0], row[1])
            new = key not in existing and key not in seen
            seen.add(key)
            out.append(new)
            if new:
                fresh.append(row)
        c.many(EVENT_INSERT + " ON CONFLICT (project_id, event_id) DO NOTHING", fresh)
        return out
