"""The durable ingest queue: what ingest commits, and the digest batches that empty it.

Ingest commits envelopes here (:meth:`IngestQueue.enqueue`; on SQLite a large body is first kept
as a file, :meth:`IngestQueue.keep_as_file`) and counts what it refused (:meth:`add_outcomes`).
The digester claims batches (:meth:`IngestQueue.digest_batch`), has them processed outside any
transaction, and writes the results through the :class:`~.batch_writer.BatchWriter` in the
transaction that deletes their rows; an envelope the database keeps refusing goes to
``dead_letters`` (:meth:`IngestQueue.quarantine`).

The two dialects claim differently. SQLite has one writer at a time: the batch is read and
processed outside the write lock, and the DELETE inside it settles which rows are whose.
PostgreSQL lets digesters run side by side: each claims its rows ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from .attachment_room import read_room, read_usage
from .base import AttachmentUsage, IntakeRow, QueuedEnvelope
from .batch_writer import BatchWriter
from .blob_files import orphan_cutoff
from .database import Cursor, Database
from .digest_records import AttachmentBudget, EnvelopeResult, Processor
from .outcomes import upsert_outcomes

log = logging.getLogger("tripwire_server")


class IngestQueue:
    """The ingest queue and its dead letters, the intake counters, and the digest's claim."""

    def __init__(self, db: Database, writer: BatchWriter) -> None:
        self.db = db
        self.writer = writer
        #: Attachment bytes this process's digest transactions stored in the database (the
        #: digester paces by it; bytes kept as files do not hold the database's write lock).
        self.attachment_bytes_written = 0

    @property
    def file_from(self) -> int | None:
        """Bytes from which a body is kept in a file of its own rather than in the queue row (None:
        never; SQLite only, store/blob_files.py)."""
        return self.db.file_from

    def keep_as_file(self, data: bytes) -> str | None:
        """Write ``data`` durably to a file of its own, outside any transaction, and return the
        name to queue it under (:attr:`IntakeRow.body_file`); None if this store keeps bodies in
        its rows (then queue ``data`` itself)."""
        if self.db.files is None or self.db.file_from is None or len(data) < self.db.file_from:
            return None
        return self.db.files.write(data)

    def discard_files(self, names: Sequence[str]) -> None:
        """Remove files from :meth:`keep_as_file` whose rows were never committed."""
        if self.db.files is not None:
            self.db.files.remove(names)

    def _attachments_to_files(self, results: list[EnvelopeResult], budget: AttachmentBudget) -> list[str]:
        """Write the large attachments of ``results`` that may fit in their project's budget to
        files, before the digest's transaction takes the write lock; the names written (those
        whose rows are not stored are removed).

        The budget is read here without a lock: should room appear before the transaction (a new
        hour, retention), an attachment not written here is stored in its row instead, never
        dropped for it. One over the budget is not written (and synced) only to be dropped."""
        written: list[str] = []
        files, file_from = self.db.files, self.db.file_from
        if files is None or file_from is None:
            return written
        attachments = [a for result in results for a in result.attachments]
        if not any(a.data_file is None and len(a.data) >= file_from for a in attachments):
            return written
        with self.db.tx(write=False) as c:
            rooms = {p: read_room(c, p, budget) for p in sorted({a.project_id for a in attachments})}
        try:
            # In the transaction's order, so that each takes the room the ones before it took.
            for a in attachments:
                fits = rooms[a.project_id].take(a.received_at, a.size)
                if fits and a.data_file is None and len(a.data) >= file_from:
                    a.data_file = files.write(a.data)
                    a.data = b""
                    written.append(a.data_file)
        except BaseException:
            files.remove(written)
            raise
        return written

    def sweep_files(self, now: float | None = None, age: float | None = None) -> int:
        """Remove files that no queue or attachment row names and that were last written long
        enough ago (a crash between a file and its row, or between a commit and the removal)."""
        if self.db.files is None:
            return 0
        candidates = self.db.files.names(orphan_cutoff(now) if age is None else orphan_cutoff(now, age))
        if not candidates:
            return 0
        # Listed before the rows are read: a file whose row commits meanwhile is in the rows.
        with self.db.tx(write=False) as c:
            referenced = {
                r[0] for r in c.all("SELECT body_file FROM ingest_queue WHERE body_file IS NOT NULL")
            }
            referenced.update(
                r[0] for r in c.all("SELECT data_file FROM attachments WHERE data_file IS NOT NULL")
            )
        removed = self.db.files.sweep(candidates, referenced)
        if removed:
            log.info("removed %d files no row names", removed)
        return removed

    def enqueue(self, rows: Sequence[IntakeRow]) -> None:
        """Commit envelopes to the durable ingest queue in one transaction (group commit)."""
        # One multi-row INSERT per 500 rows rather than executemany: the driver releases the GIL
        # around every statement step, and each release hands the GIL to the event loop thread and
        # back. Fewer, bigger statements keep the intake writer from ping-ponging with it.
        with self.db.tx() as c:
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
        """Envelopes acknowledged but not yet digested."""
        with self.db.tx(write=False) as c:
            row = c.one("SELECT COUNT(*) FROM ingest_queue")
        return int(row[0])

    def quarantine(self, queue_id: int, error: str) -> bool:
        """Move a queued envelope the database keeps refusing to ``dead_letters`` (and count it as
        ``envelope``/``digest_failed``). False if it was no longer queued."""
        now = time.time()
        with self.db.tx() as c:
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
                row[4] = self.db.read_file(body_file)
                self.db.remove_after_commit(c, [body_file])
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
        """Envelopes moved aside by :meth:`quarantine`."""
        with self.db.tx(write=False) as c:
            return int(c.one("SELECT COUNT(*) FROM dead_letters")[0])

    def attachment_usage(self, project_id: int) -> AttachmentUsage:
        """Attachment bytes the project stored this hour and in all (what its budget is held to)."""
        with self.db.tx(write=False) as c:
            return read_usage(c, project_id)

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
                    body = self.db.read_file(r[6])
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
                with self.db.tx() as c:
                    stored = self._write_results(c, [result], budget)
                kept |= stored
            except self.db.data_errors as exc:
                log.error("envelope %s cannot be stored (%r); moved to dead_letters", result.queue_id, exc)
                self.quarantine(result.queue_id, repr(exc))
        return kept

    def add_outcomes(self, rows: Sequence[tuple[int, float, str, str, str, int]]) -> None:
        """Add intake counters: ``(project_id, hour, source, category, reason, quantity)``."""
        if not rows:
            return
        with self.db.tx() as c:
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
        # Where events cannot be refused twice by the database itself (PostgreSQL's partitions), the
        # per-project locks come first, before any row lock of the batch (no deadlock between digesters).
        self.db.lock_event_inserts(c, sorted({e.project_id for r in results for e in r.events}))
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
        self.db.remove_after_commit(c, body_files)
        # Another process may have digested some rows first (SQLite offers no SKIP LOCKED): those
        # were not deleted by us, so their results are not ours to write.
        mine = [r for r in results if r.queue_id in owned]
        writer = self.writer.write(c, mine, budget)
        self.attachment_bytes_written += writer.attachment_bytes
        return writer.files_kept

    # -- digest batches ----------------------------------------------------------------------

    def digest_batch(self, limit: int, processor: Processor) -> int:
        """Claim up to ``limit`` queued envelopes, and no more bytes than the processor's
        ``max_batch_bytes`` (at least one), digest them and delete them in one transaction.

        Several processes may call this at once: each envelope is digested exactly once. Returns
        how many envelopes were done.
        """
        if self.db.backend == "postgresql":
            return self._digest_claiming(limit, processor)
        return self._digest_reading_first(limit, processor)

    def _digest_reading_first(self, limit: int, processor: Processor) -> int:
        """SQLite's batch: one writer at a time, so nothing is claimed before the write."""
        # Read and prepare outside the write lock: the CPU work (parse, normalize, group) must not
        # hold up the ingest writer. Ownership is settled by the DELETE inside the write.
        with self.db.tx(write=False) as c:
            # Sizes first (length() of a blob does not read it), so that a batch of large
            # envelopes is never loaded whole.
            sized = c.all(
                "SELECT id, COALESCE(body_size, length(body)) FROM ingest_queue ORDER BY id LIMIT ?", (limit,)
            )
            if not sized:
                return 0
            queued = self._load_queued(c, self._batch_ids(sized, processor.max_batch_bytes))
        if not queued:
            return 0  # digested by another process in between
        results = processor.prepare(queued)
        del queued  # the bodies are not needed any more: keep the batch's memory to its results
        # Large attachments go to files first, synced outside the write lock (store/blob_files.py).
        written = self._attachments_to_files(results, processor.attachment_budget)
        kept: set[str] = set()
        try:
            try:
                with self.db.tx() as c:
                    stored = self._write_results(c, results, processor.attachment_budget)
                kept = stored
            except self.db.data_errors:
                kept = self._write_isolated(results, processor.attachment_budget)
        finally:
            # Files no committed row names: over budget, duplicates, or a failed transaction.
            self.discard_files([name for name in written if name not in kept])
        return len(results)

    def _digest_claiming(self, limit: int, processor: Processor) -> int:
        """PostgreSQL's batch: claimed, processed and written in one transaction."""
        results = None
        budget = processor.attachment_budget
        try:
            with self.db.tx() as c:
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
        except self.db.data_errors:
            if results is None:
                raise
            # The claim was rolled back with the batch; each row is claimed again (or found
            # gone) by the DELETE in its own transaction.
            self._write_isolated(results, budget)
        return len(results)
