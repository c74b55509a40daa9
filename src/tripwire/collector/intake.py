"""Group commit into the durable ingest queue.

Ingest handlers hand their envelope to one writer thread and wait. The writer takes everything
that arrived while it was busy, commits it in one transaction, then wakes every waiting handler
at once. One fsync thus covers hundreds of envelopes, and a 200 is only ever sent after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .store.base import IntakeRow, Store

log = logging.getLogger("tripwire.collector")


class IntakeUnavailable(Exception):
    """The ingest queue could not be written (the handler answers 503, the SDK retries)."""


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futures:
        if fut.done():
            continue  # the client went away and the handler was cancelled
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(IntakeUnavailable(str(error)))


class IntakeWriter:
    """The single thread that commits acknowledged envelopes (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 1000,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._outcomes: dict[tuple[int, float, str, str, str], int] = {}
        self._outcome_lock = threading.Lock()
        self._next_refresh = 0.0
        #: Envelopes waiting in the database to be digested (refreshed about once a second).
        self.backlog = 0
        #: Envelopes handed to the writer and not yet committed.
        self.in_flight = 0
        #: Counters for the status endpoint and the benchmark.
        self.committed = 0
        self.batches = 0

    def start(self) -> None:
        self.backlog = self.store.queue_depth()
        self._thread = threading.Thread(target=self._run, name="tripwire-intake", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is already queued, then stop."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        self._flush_outcomes()

    async def submit(self, row: IntakeRow) -> None:
        """Return once ``row`` is committed; raise :class:`IntakeUnavailable` if it cannot be."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.in_flight += 1
        try:
            self._queue.put((row, fut, loop))
            await fut
        finally:
            self.in_flight -= 1

    def count(self, project_id: int, category: str, reason: str, quantity: int = 1) -> None:
        """Count something that happened at intake (e.g. a rate-limited or oversized request)."""
        key = (project_id, float(int(time.time() // 3600) * 3600), "intake", category, reason)
        with self._outcome_lock:
            self._outcomes[key] = self._outcomes.get(key, 0) + quantity

    def _flush_outcomes(self) -> None:
        with self._outcome_lock:
            rows, self._outcomes = self._outcomes, {}
        if rows:
            try:
                self.store.add_outcomes([(*k, v) for k, v in rows.items()])
            except Exception:
                log.exception("could not store intake counters")
                with self._outcome_lock:
                    for k, v in rows.items():
                        self._outcomes[k] = self._outcomes.get(k, 0) + v

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._housekeeping()
                continue
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
            self._housekeeping()

    def _commit(self, batch: list[Any]) -> None:
        error: BaseException | None = None
        try:
            self.store.enqueue([row for row, _fut, _loop in batch])
            self.committed += len(batch)
            self.batches += 1
            self.backlog += len(batch)
        except Exception as exc:
            log.exception("could not commit %d envelopes to the ingest queue", len(batch))
            error = exc
        by_loop: dict[Any, list[asyncio.Future[None]]] = {}
        for _row, fut, loop in batch:
            by_loop.setdefault(loop, []).append(fut)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, error)
            except RuntimeError:
                pass  # that event loop is closed: nobody is waiting any more
        if error is None and self.on_commit is not None:
            self.on_commit()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + 1.0
        self._flush_outcomes()
        try:
            self.backlog = self.store.queue_depth()
        except Exception:
            log.exception("could not read the ingest queue depth")
