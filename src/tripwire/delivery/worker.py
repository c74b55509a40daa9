"""One daemon thread draining an :class:`~tripwire.delivery.outbox.Outbox`: the SDK's only worker shape.

The client's worker (turning capture snapshots into events) and each HTTP reporter's sender (posting
them) are both a :class:`Worker`. The caller only queues (never blocks, bounded by the outbox). The
thread is started lazily, on the first job; ``flush`` waits with a deadline; ``close`` finishes what
it can in time and hands back what is left. In a forked child the worker starts empty, with a fresh
condition and no thread (the one fork strategy: ``tripwire._forksafe``); the next job starts the
child's own thread, and what the parent had queued stays the parent's to deliver.

What to do next is the owner's call: by default the oldest job of the outbox, normal lane first; a
sender passes ``pick`` to wait out a backoff, skip rate-limited payloads or read its spool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .._forksafe import reset_after_fork
from .._log import logger
from .clock import MONOTONIC, Clock
from .outbox import Outbox

#: ``pick(outbox, now) -> (job, wait)``: a job to run now, or None and how long to wait (clock
#: seconds; None: until something is queued).
Pick = Callable[[Outbox, float], "tuple[Any, float | None]"]

#: How often ``flush`` re-checks a ``busy`` predicate that changes without a notify (time passing).
FLUSH_POLL = 0.5


def take_oldest(outbox: Outbox, now: float) -> tuple[Any, float | None]:
    """The default ``pick``: the oldest job, normal lane first; else wait for one."""
    return outbox.take(), None


class Worker:
    """A bounded outbox drained by one lazily started daemon thread that calls ``process(job)``.

    ``on_drop(job)`` is called for a low-priority job evicted by a normal one; ``close`` returns the
    jobs it had no time for. ``yield_between_jobs`` lets a waiting thread (an event loop) in after
    every job, for CPU-heavy jobs that hold the GIL. ``on_stop()`` runs on the thread as it ends
    (to close what only the thread uses, such as connections).
    """

    def __init__(
        self,
        process: Callable[[Any], None],
        outbox: Outbox,
        *,
        name: str,
        on_drop: Callable[[Any], None] | None = None,
        pick: Pick = take_oldest,
        clock: Clock = MONOTONIC,
        yield_between_jobs: bool = False,
        on_stop: Callable[[], None] | None = None,
        linger: float = 0.0,
    ) -> None:
        self._process = process
        self.outbox = outbox
        self.name = name
        self._on_drop = on_drop
        self._pick = pick
        self.clock = clock
        self._yield = yield_between_jobs
        self._on_stop = on_stop
        #: Woken from idle by low-priority jobs only, wait this long (s) for more before starting:
        #: a burst of them is then processed in one go instead of one thread switch per job.
        #: A normal job ends the wait at once.
        self._linger = linger
        self._lingering = False
        #: flush() calls waiting now: the thread does not begin to linger while there is one (a job
        #: submitted just before a flush would otherwise wake the thread into a linger that the
        #: flush, already waiting, has no reason to end).
        self._flushes = 0
        #: Guards the outbox and the worker's state; owners may hold it to change their own state
        #: that ``pick`` reads (then ``notify_all`` it). Reentrant: a signal handler or a ``__del__``
        #: (run by the GC at any allocation) may capture on a thread already inside submit().
        self.cond = threading.Condition(threading.RLock())
        # Taken from the outbox and not finished yet: what flush() waits for besides the outbox.
        self._inflight = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.closed = False
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # The parent's jobs are the parent's to deliver; the child has no thread and its condition's
        # lock may have been held by a thread that does not exist here.
        self.cond = threading.Condition(threading.RLock())
        self.outbox.take_all()
        self._inflight = 0
        self._flushes = 0
        self._thread = None
        self._stopping = False

    # -- the caller's side -------------------------------------------------------------------------
    def submit(self, job: Any, *, low_priority: bool = False) -> bool:
        """Queue a job without blocking; False if there is no room or the worker is closed."""
        if self.closed:
            return False
        with self.cond:
            accepted, evicted = self.outbox.put(job, low_priority=low_priority)
            if accepted and not (low_priority and self._lingering):
                self.cond.notify_all()
        for old in evicted:
            self._dropped(old)
        if accepted and not self.start():
            self.drain_inline()
        return accepted

    def put_back(self, jobs: list[Any], *, low_priority: Callable[[Any], bool] | None = None) -> None:
        """Return jobs taken earlier to the front of the outbox, in order (a retry), whatever the bound."""
        with self.cond:
            for job in reversed(jobs):
                self.outbox.put_back(job, low_priority=bool(low_priority and low_priority(job)))
            self.cond.notify_all()

    def take_all(self) -> list[Any]:
        """Empty the outbox (counted as in flight until :meth:`done` is called for each)."""
        with self.cond:
            jobs = self.outbox.take_all()
            self._inflight += len(jobs)
            return jobs

    def done(self, count: int = 1) -> None:
        """``count`` jobs taken with :meth:`take_all` are finished (delivered, stored or put back)."""
        with self.cond:
            self._inflight -= count
            self._notify_if_idle()

    def _dropped(self, job: Any) -> None:
        if self._on_drop is None:
            return
        try:
            self._on_drop(job)
        except Exception:
            logger.exception("tripwire: could not count a dropped job")

    @property
    def pending(self) -> int:
        """Jobs queued or being processed."""
        return len(self.outbox) + self._inflight

    # -- the thread --------------------------------------------------------------------------------
    def start(self) -> bool:
        """Make sure the thread runs; False if no thread can start (at interpreter shutdown)."""
        if self._thread is not None:
            return True
        with self.cond:
            if self._thread is not None or self._stopping:
                return self._thread is not None
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread = thread
        try:
            thread.start()
        except RuntimeError:
            # At interpreter shutdown (Python >= 3.12) no new thread may start.
            with self.cond:
                self._thread = None
            return False
        return True

    def drain_inline(self) -> None:
        """Run what is ready on the calling thread: only when no thread can start. Jobs that must
        wait (a backoff) stay queued for ``close`` to hand back."""
        while True:
            with self.cond:
                job, _wait = self._pick(self.outbox, self.clock.now())
                if job is None:
                    return
                self._inflight += 1
            self._run_one(job)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self._on_stop is not None:
                try:
                    self._on_stop()
                except Exception:
                    logger.exception("tripwire: %s failed to stop cleanly", self.name)

    def _loop(self) -> None:
        idle = True
        while True:
            with self.cond:
                while True:
                    if self._stopping:
                        self._thread = None
                        return
                    if (
                        idle
                        and self._linger
                        and not self._flushes
                        and self.outbox
                        and not self.outbox.has_normal
                    ):
                        self._lingering = True
                        self.cond.wait(self._linger)
                        self._lingering = False
                    idle = False
                    job, wait = self._pick(self.outbox, self.clock.now())
                    if job is not None:
                        self._inflight += 1
                        break
                    idle = True
                    self.clock.wait(self.cond, wait)
            self._run_one(job)
            if self._yield:
                # Building events is CPU work under the GIL: let a waiting thread (the event loop)
                # in between two events instead of after a whole switch interval.
                time.sleep(0)

    def _run_one(self, job: Any) -> None:
        try:
            self._process(job)
        except Exception:
            logger.exception("tripwire: %s failed to process a job", self.name)
        finally:
            with self.cond:
                self._inflight -= 1
                self._notify_if_idle()

    def _notify_if_idle(self) -> None:
        # Only flush() waits for this (the thread itself is running): wake it when there is nothing
        # left, not after every job, which would wake the flushing thread 10,000 times for 10,000
        # events. A flush that also waits on its own ``busy`` polls (FLUSH_POLL).
        if not self._inflight and not self.outbox:
            self.cond.notify_all()

    # -- lifecycle ---------------------------------------------------------------------------------
    def flush(self, timeout: float | None, busy: Callable[[], bool] | None = None) -> bool:
        """Wait until the outbox is empty, nothing is in flight and ``busy()`` (checked under the
        lock) is false; False if ``timeout`` (real seconds) ran out or no thread is left to do it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            self._flushes += 1
            try:
                if self._lingering:
                    self.cond.notify_all()  # a flush wants it now: the thread stops waiting for more
                while self.outbox or self._inflight or (busy is not None and busy()):
                    if self._thread is None and not self._inflight:
                        return False
                    wait = FLUSH_POLL
                    if deadline is not None:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        wait = min(wait, remaining)
                    self.cond.wait(wait)
                return True
            finally:
                self._flushes -= 1

    def close(self, timeout: float | None, *, join: float | None = None) -> tuple[bool, list[Any]]:
        """Flush up to ``timeout``, stop the thread: (flushed in time, the jobs left behind).

        The thread is given ``join`` seconds to end (default: up to 0.5 s, within ``timeout``).
        """
        done = self.flush(timeout)
        self.closed = True
        with self.cond:
            self._stopping = True
            thread = self._thread
            left = self.outbox.take_all()
            self.cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            if join is None:
                join = 0.5 if timeout is None else min(timeout, 0.5)
            thread.join(join)
        return done, left
