"""Group commit into the durable ingest queue.

Ingest handlers append their envelope to a list on the event loop and wait. One flusher task hands
everything in the list to a single writer thread, which commits it in one transaction; while that
commit runs, new envelopes pile up for the next one. One fsync thus covers every request that
arrived during the previous commit, a 200 is only ever sent after the commit, and the event loop
and the writer thread meet once per batch rather than once per request (each meeting costs a GIL
hand-off).

Large envelopes (``large_row`` bytes and up: attachments, minidumps) yield to small ones. Writing
and syncing 15 MiB takes SQLite 150-400 ms here, and every small envelope that arrives meanwhile
waits for that commit: a few large uploads a second would stall every other client's
acknowledgement. So a large envelope is committed on its own, after the small ones pending, and
while small envelopes keep arriving the next large one waits ``large_yield`` times as long as the
last large commit took: large uploads get at most 1 / (1 + ``large_yield``) of the writer's time
when it is contended, and all of it when it is not. The bodies waiting are bounded as any request
in flight is (the bytes-in-flight budget).

A store that keeps large bodies as files (SQLite: store/blob_files.py) removes that wait instead
of spreading it: a body of ``store.queue.file_from`` bytes and more is written and synced to a file of
its own by a separate thread, outside the database's write lock, and only then queued as a small
row naming the file, in the next group commit with every other envelope. The 200 still goes out
only once both the file and the row are durable. PostgreSQL keeps bodies in its rows: its
writers do not queue behind one another, and collectors on several hosts share no directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .store.base import IntakeRow
from .store.queue import IngestQueue

log = logging.getLogger("tripwire_server")


class IntakeUnavailable(Exception):
    """The ingest queue could not be written (the handler answers 503, the SDK retries)."""


class IntakeWriter:
    """Commits acknowledged envelopes in batches (see the module docstring)."""

    def __init__(
        self,
        queue: IngestQueue,
        *,
        max_batch: int = 1000,
        on_commit: Callable[[], None] | None = None,
        large_row: int = 1024 * 1024,
        large_yield: float = 4.0,
    ) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self.on_commit = on_commit
        #: Bytes from which an envelope is committed on its own, yielding to small ones.
        self.large_row = large_row
        #: While small envelopes keep coming, a large commit that took T waits ``large_yield * T``.
        self.large_yield = large_yield
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tripwire-intake")
        # Files are written beside the writer, never by it: a 15 MiB sync must not hold up commits.
        self._file_executor = ThreadPoolExecutor(1, thread_name_prefix="tripwire-intake-files")
        self._pending: list[tuple[IntakeRow, asyncio.Future[None]]] = []
        self._large: list[tuple[IntakeRow, asyncio.Future[None]]] = []
        #: Loop time before which the next large envelope waits, if small ones arrived since.
        self._large_after = 0.0
        self._small_since_large = False
        self._wakeup: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self._outcomes: dict[tuple[int, float, str, str, str], int] = {}
        self._outcome_lock = threading.Lock()
        #: Envelopes waiting in the database to be digested (refreshed about once a second).
        self.backlog = 0
        #: Envelopes handed to the writer and not yet committed.
        self.in_flight = 0
        #: Counters for the status endpoint and the benchmark.
        self.committed = 0
        self.batches = 0

    async def start(self) -> None:
        """Start the periodic housekeeping (counters, backlog); call on the serving event loop."""
        loop = asyncio.get_running_loop()
        self.backlog = await loop.run_in_executor(self._executor, self.queue.queue_depth)
        self._housekeeper = loop.create_task(self._housekeeping_loop())

    async def stop(self) -> None:
        """Commit what is already pending, store the counters, then stop."""
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeper
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._flush_outcomes)
        self._executor.shutdown(wait=True)
        self._file_executor.shutdown(wait=True)

    async def submit(self, row: IntakeRow) -> None:
        """Return once ``row`` is committed; raise :class:`IntakeUnavailable` if it cannot be."""
        loop = asyncio.get_running_loop()
        file_from = self.queue.file_from
        if file_from is not None and len(row.body) >= file_from:
            await self._submit_as_file(loop, row)
        else:
            await self._submit_row(loop, row)

    async def _submit_row(self, loop: asyncio.AbstractEventLoop, row: IntakeRow) -> None:
        fut: asyncio.Future[None] = loop.create_future()
        if len(row.body) >= self.large_row:
            self._large.append((row, fut))
        else:
            self._pending.append((row, fut))
            self._small_since_large = True
            if self._wakeup is not None and not self._wakeup.done():
                self._wakeup.set_result(None)  # a flusher pacing a large envelope: small ones first
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        self.in_flight += 1
        try:
            # shield: a client that goes away must not cancel the commit of its neighbours.
            await asyncio.shield(fut)
        finally:
            self.in_flight -= 1

    async def _submit_as_file(self, loop: asyncio.AbstractEventLoop, row: IntakeRow) -> None:
        self.in_flight += 1  # counted from the start: the backlog check sees it while it is written
        try:
            name = await loop.run_in_executor(self._file_executor, self.queue.keep_as_file, row.body)
        except Exception as exc:
            log.exception("could not write a %d byte envelope to a file", len(row.body))
            raise IntakeUnavailable(str(exc)) from exc
        finally:
            self.in_flight -= 1
        if name is not None:
            row = IntakeRow(
                row.project_id, row.received_at, row.kind, b"", row.remote_addr, name, len(row.body)
            )
        try:
            await self._submit_row(loop, row)
        except IntakeUnavailable:
            if name is not None:
                # The row was not committed: nothing names the file (the sweep would find it later).
                await loop.run_in_executor(self._file_executor, self.queue.discard_files, [name])
            raise

    def count(self, project_id: int, category: str, reason: str, quantity: int = 1) -> None:
        """Count something that happened at intake (e.g. a rate-limited or oversized request)."""
        key = (project_id, float(int(time.time() // 3600) * 3600), "intake", category, reason)
        with self._outcome_lock:
            self._outcomes[key] = self._outcomes.get(key, 0) + quantity

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending or self._large:
            if self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._commit_batch(loop, batch)
                continue
            wait = self._large_after - loop.time()
            if wait > 0 and self._small_since_large:
                self._wakeup = loop.create_future()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup, wait)
                self._wakeup = None
                if self._pending:
                    continue
            started = loop.time()
            self._small_since_large = False
            await self._commit_batch(loop, [self._large.pop(0)])
            self._large_after = loop.time() + self.large_yield * (loop.time() - started)

    async def _commit_batch(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[IntakeRow, asyncio.Future[None]]]
    ) -> None:
        error: BaseException | None = None
        try:
            await loop.run_in_executor(self._executor, self._commit, [row for row, _ in batch])
        except Exception as exc:
            log.exception("could not commit %d envelopes to the ingest queue", len(batch))
            error = exc
        for _row, fut in batch:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(IntakeUnavailable(str(error)))

    def _commit(self, rows: list[IntakeRow]) -> None:
        # Runs in the writer thread.
        self.queue.enqueue(rows)
        self.committed += len(rows)
        self.batches += 1
        self.backlog += len(rows)
        if self.on_commit is not None:
            self.on_commit()

    async def _housekeeping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            try:
                await loop.run_in_executor(self._executor, self._housekeeping)
            except Exception:
                log.exception("intake housekeeping failed")

    def _housekeeping(self) -> None:
        self._flush_outcomes()
        self.backlog = self.queue.queue_depth()

    def _flush_outcomes(self) -> None:
        with self._outcome_lock:
            rows, self._outcomes = self._outcomes, {}
        if not rows:
            return
        try:
            self.queue.add_outcomes([(*k, v) for k, v in rows.items()])
        except Exception:
            log.exception("could not store intake counters")
            with self._outcome_lock:
                for k, v in rows.items():
                    self._outcomes[k] = self._outcomes.get(k, 0) + v
