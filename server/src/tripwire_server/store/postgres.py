"""The PostgreSQL store (psycopg 3): for several collector processes sharing one database."""

from __future__ import annotations

from typing import Any

import psycopg

from ._event_partitions import EventPartitionsMixin
from ._pg_locks import SCOPED_KEY
from ._sql import Cursor, SQLStore
from .batch import Processor

# Any fixed number: the advisory lock that serializes schema migrations between processes.
_MIGRATION_LOCK = 0x7472_6970


class PostgresStore(EventPartitionsMixin, SQLStore):
    """:class:`~.base.Store` on PostgreSQL.

    Error events and performance data are in day partitions; retention drops whole partitions
    (store/_event_partitions.py, store/_performance.py).

    Several processes may digest at once: each claims queue rows with ``FOR UPDATE SKIP LOCKED``,
    so a row is digested by exactly one of them, and all counters are upserts on unique keys.
    Use ``?options=-csearch_path%3Dmyschema`` in the URL to keep the tables in a schema.
    """

    backend = "postgresql"
    _data_errors = (ValueError, TypeError, psycopg.DataError, psycopg.IntegrityError)
    _least = "LEAST"
    _greatest = "GREATEST"
    _for_update = " FOR UPDATE"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._translated: dict[str, str] = {}

    def _connect(self) -> Any:
        return psycopg.connect(self.url, autocommit=False)

    def _translate(self, sql: str) -> str:
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

    def _insert_returning(self, c: Cursor, sql: str, rows: list[tuple[Any, ...]]) -> list[bool]:
        # One pipelined round trip for the whole batch instead of one per row.
        if not rows:
            return []
        c.raw.executemany(self._translate(sql), rows, returning=True)
        out = []
        while True:
            out.append(c.raw.fetchone() is not None)
            if not c.raw.nextset():
                break
        return out

    def digest_batch(self, limit: int, processor: Processor) -> int:
        results = None
        budget = processor.attachment_budget
        try:
            with self._tx() as c:
                # Claim by id and size only (octet_length reads no TOASTed body), then load the
                # bodies of the rows that fit in the batch's bytes; the rest are unlocked at commit.
                sized = c.all(
                    "SELECT id, octet_length(body) FROM ingest_queue"
                    " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
                    (limit,),
                )
                if not sized:
                    return 0
                queued = self._load_queued(c, self._batch_ids(sized, processor.max_batch_bytes))
                results = processor.prepare(queued)
                del queued
                self._write_results(c, results, budget)
        except self._data_errors:
            if results is None:
                raise
            # The claim was rolled back with the batch; each row is claimed again (or found
            # gone) by the DELETE in its own transaction.
            self._write_isolated(results, budget)
        return len(results)
