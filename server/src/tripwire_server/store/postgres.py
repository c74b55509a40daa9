"""The PostgreSQL database (psycopg 3): for several collector processes sharing one database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from ._pg_locks import SCOPED_KEY
from .database import Cursor, Database
from .event_partitions import EventPartitions

# Any fixed number: the advisory lock that serializes schema migrations between processes.
_MIGRATION_LOCK = 0x7472_6970


class PostgresDatabase(Database):
    """A PostgreSQL database.

    Error events and performance data are in day partitions; retention drops whole partitions
    (store/event_partitions.py, store/performance.py).

    Several processes may digest at once: each claims queue rows with ``FOR UPDATE SKIP LOCKED``
    (store/queue.py), so a row is digested by exactly one of them, and all counters are upserts on
    unique keys. Use ``?options=-csearch_path%3Dmyschema`` in the URL to keep the tables in a schema.
    """

    backend = "postgresql"
    data_errors = (ValueError, TypeError, psycopg.DataError, psycopg.IntegrityError)
    least = "LEAST"
    greatest = "GREATEST"
    for_update = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._translated: dict[str, str] = {}
        self.event_partitions = EventPartitions(self)

    def _connect(self) -> Any:
        return psycopg.connect(self.url, autocommit=False)

    def translate(self, sql: str) -> str:
        out = self._translated.get(sql)
        if out is None:
            out = self._translated[sql] = sql.replace("?", "%s")
        return out

    def _begin(self, raw: Any, write: bool) -> None:
        return None  # psycopg opens a transaction with the first statement

    def _commit(self, conn: Any, raw: Any) -> None:
        conn.commit()

    def _rollback(self, conn: Any, raw: Any) -> None:
        conn.rollback()

    def _migration_lock(self, c: Cursor) -> None:
        c.ex(f"SELECT pg_advisory_xact_lock({SCOPED_KEY})", (_MIGRATION_LOCK,))

    def _after_migration(self, c: Cursor, version: int) -> None:
        if version == 10:
            self.event_partitions.copy_events_v9(c)

    # -- events in day partitions (store/event_partitions.py) --------------------------------

    def insert_events(self, c: Cursor, rows: list[tuple[Any, ...]]) -> list[bool]:
        return self.event_partitions.insert_events(c, rows)

    def lock_event_inserts(self, c: Cursor, project_ids: list[int]) -> None:
        self.event_partitions.lock_projects(c, project_ids)

    def event_retention_cutoff(self, now: float, days: int) -> float:
        return self.event_partitions.retention_cutoff(now, days)

    def drop_expired_events(
        self, now: float, keep_days: list[int], free_attachments: Callable[[Cursor, float], None]
    ) -> int:
        return self.event_partitions.drop_expired(now, keep_days, free_attachments)
