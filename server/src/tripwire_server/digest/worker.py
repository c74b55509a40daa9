"""The digester: a background thread (or, with ``--digest-process``, a child process) that feeds
queued envelopes through :class:`~.processor.EnvelopeProcessor` and lets the store write the
results, and sweeps retention now and then.

The store deletes each queue row in the same transaction that writes its results, so a crash at
any point either keeps the row (it is digested again after restart) or keeps its results, never
neither and never both.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from ..config import CollectorConfig
from ..store import open_store
from ..store.digest_records import AttachmentBudget
from ..store.queue import IngestQueue
from ..store.retention import Retention
from .processor import EnvelopeProcessor

log = logging.getLogger("tripwire_server")

#: Attachment bytes stored by one digest batch from which the digester then pauses
#: ``LARGE_YIELD`` times as long as the batch took (queue_writer.IntakeWriter paces large envelopes so).
LARGE_WRITE = 1024 * 1024
LARGE_YIELD = 4.0


class Digester:
    """Digests the ingest queue and sweeps retention now and then, in a background thread.

    ``wake`` and ``stop`` may be :mod:`multiprocessing` events: :func:`digest_process_main` runs
    the same loop in a child process, where it does not compete with the HTTP event loop for the
    GIL.
    """

    def __init__(
        self,
        queue: IngestQueue,
        retention: Retention,
        config: CollectorConfig,
        *,
        wake: Any = None,
        stop: Any = None,
        idle_wait: float = 0.2,
    ) -> None:
        #: Seconds to wait for a wake-up when the queue is empty (other processes may fill it).
        self.idle_wait = idle_wait
        self.queue = queue
        self.retention = retention
        self.config = config
        self.processor = EnvelopeProcessor(
            config.limits,
            attachment_budget=AttachmentBudget(
                per_hour=config.attachment_bytes_per_hour, total=config.attachment_bytes_total
            ),
            max_batch_bytes=config.digest_batch_bytes,
        )
        self._wake = wake if wake is not None else threading.Event()
        self._stop = stop if stop is not None else threading.Event()
        self._thread: threading.Thread | None = None
        self._next_retention = time.monotonic() + min(5.0, config.retention_interval)
        #: Envelopes digested by this digester (for tests and the status endpoint).
        self.digested = 0
        self.errors = 0

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="tripwire-digest", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Tell the digester that new envelopes were queued."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand and wait up to ``timeout`` seconds for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, parent_pid: int | None = None) -> None:
        """The loop; returns when stopped (or, in a child process, when the parent is gone)."""
        backoff = 0.1
        while not self._stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return  # the server was killed: do not linger as an orphan
            try:
                started = time.monotonic()
                written = self.queue.attachment_bytes_written
                done = self.queue.digest_batch(self.config.digest_batch_size, self.processor)
                self.digested += done
                backoff = 0.1
                if self.queue.attachment_bytes_written - written >= LARGE_WRITE:
                    # Storing megabytes holds the database's write lock and fills the log that the
                    # ingest writer's next sync flushes: like large envelopes at intake, yield.
                    self._stop.wait(LARGE_YIELD * (time.monotonic() - started))
            except Exception:
                # A database hiccup (lock timeout, deadlock, restart): the rows stay queued.
                self.errors += 1
                log.exception("digest failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if time.monotonic() >= self._next_retention:
                self._retention()
            if done == 0:
                # Other processes may fill the queue too (PostgreSQL): poll as well as wait.
                self._wake.wait(self.idle_wait)
                self._wake.clear()
            elif self._should_linger(done):
                # Let the queue refill: the next batch pays its fixed costs for more envelopes.
                self._stop.wait(self.config.digest_linger)

    def _should_linger(self, done: int) -> bool:
        """After a batch that was not full, whether little enough is waiting to wait for more.

        A batch may also end early at ``digest_batch_bytes`` (large envelopes): with a backlog
        behind it, the next batch starts at once.
        """
        limit = self.config.digest_batch_size
        if self.config.digest_linger <= 0 or done >= limit:
            return False
        try:
            return self.queue.queue_depth() < limit // 2
        except Exception:
            return False  # the next batch will meet (and report) whatever is wrong

    def _retention(self) -> None:
        self._next_retention = time.monotonic() + self.config.retention_interval
        try:
            deleted = self.retention.apply_retention(
                default_days=self.config.retention_days,
                default_max_events=self.config.retention_max_events,
                now=time.time(),
            )
            if deleted:
                log.info("retention removed %d events", deleted)
            self.retention.apply_perf_retention(
                rollup_days=self.config.performance_retention_days,
                sample_days=self.config.sample_retention_days,
                now=time.time(),
            )
            self.retention.apply_profile_retention(days=self.config.profile_retention_days, now=time.time())
        except Exception:
            log.exception("retention sweep failed")


def digest_process_main(config: CollectorConfig, parent_pid: int) -> None:
    """Entry point of the digest child process of ``tripwire serve``.

    It polls the queue (every 50 ms when idle) rather than waiting on a cross-process event, and
    stops on SIGTERM after the batch in hand; Ctrl-C is left to the parent, which sends SIGTERM.

    It runs ``config.digest_niceness`` steps below the server's CPU priority (``os.nice``).

    On SQLite its connections commit with ``synchronous=NORMAL``: a digest transaction lost to a
    power cut only loses the deletion of its queue rows too (WAL commits are ordered), so the
    envelopes are digested again; the acknowledgement's durability comes from the intake commit.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if config.digest_niceness > 0:
        # Below the server: when both want the CPUs, acknowledged requests are answered first and
        # the digest catches up once ingest is idle; ingest refuses past ``max_backlog``.
        try:
            os.nice(config.digest_niceness)
        except OSError as exc:
            log.warning("could not lower the digest's CPU priority: %s", exc)
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    store = open_store(config.effective_database_url, sqlite_synchronous="NORMAL")
    try:
        Digester(store.queue, store.retention, config, stop=stop, idle_wait=0.05).run(parent_pid=parent_pid)
    finally:
        store.close()
