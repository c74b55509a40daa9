"""One background thread per client that turns capture snapshots into events and hands them on.

The caller only enqueues (non-blocking, bounded). The thread is started lazily on the first item and
again after ``fork()``, since a child process inherits the queue but not the thread.

Two lanes share one bound: errors (the normal lane) and low-priority work (release-health sessions,
reports about the SDK itself). When the queue is full an error evicts the oldest low-priority job, and a
low-priority job is refused: a burst of errors never loses an error to a session batch.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._log import logger


class Worker:
    """A bounded two-lane queue drained by one daemon thread.

    ``process(job)`` runs on the thread for every job; ``on_drop(job)`` is called for a low-priority job
    pushed out by an error and for every job ``close`` had no time for, so the caller can count it.
    """

    def __init__(
        self,
        process: Callable[[Any], None],
        *,
        maxsize: int,
        name: str,
        on_drop: Callable[[Any], None] | None = None,
    ) -> None:
        self._process = process
        self._maxsize = maxsize
        self._name = name
        self._on_drop = on_drop
        self._reset_state()
        self._closed = False

    def _reset_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._high: deque[Any] = deque()
        self._low: deque[Any] = deque()
        # Queued plus the one being processed: what flush() waits for.
        self._unfinished = 0
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stop = False

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            # The child inherits the parent's queued jobs (the parent delivers them) and a lock whose
            # state is undefined; it starts from an empty queue and its own thread.
            self._reset_state()

    def submit(self, job: Any, *, low_priority: bool = False) -> bool:
        """Queue a job without blocking; False if there is no room or the worker is closed."""
        if self._closed:
            return False
        self._check_fork()
        evicted: Any = None
        with self._cond:
            if len(self._high) + len(self._low) >= self._maxsize:
                if low_priority or not self._low:
                    return False
                evicted = self._low.popleft()
                self._unfinished -= 1
            (self._low if low_priority else self._high).append(job)
            self._unfinished += 1
            self._cond.notify()
            start = self._thread is None
        if start:
            self._start()
        if evicted is not None:
            self._dropped([evicted])
        return True

    def _dropped(self, jobs: list[Any]) -> None:
        if self._on_drop is None:
            return
        for job in jobs:
            try:
                self._on_drop(job)
            except Exception:
                logger.exception("tripwire: could not count a dropped job")

    def _start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread = thread
        try:
            thread.start()
        except RuntimeError:
            # At interpreter shutdown (Python >= 3.12) no new thread may start: work inline instead.
            with self._cond:
                self._thread = None
            self._drain_inline()

    def _drain_inline(self) -> None:
        while True:
            with self._cond:
                job = self._take()
                if job is None:
                    return
            self._run_one(job)

    def _take(self) -> Any:
        if self._high:
            return self._high.popleft()
        if self._low:
            return self._low.popleft()
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._take()
                while job is None:
                    if self._stop:
                        self._thread = None
                        return
                    self._cond.wait()
                    job = self._take()
            self._run_one(job)
            # Building events is CPU work under the GIL: let a waiting thread (the event loop) in
            # between two events instead of after a whole switch interval.
            time.sleep(0)

    def _run_one(self, job: Any) -> None:
        try:
            self._process(job)
        except Exception:
            logger.exception("tripwire: worker failed to process a job")
        finally:
            with self._cond:
                self._unfinished -= 1
                if self._unfinished <= 0:
                    self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Jobs queued or being processed."""
        self._check_fork()
        return self._unfinished

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything queued so far is processed; False on timeout."""
        self._check_fork()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._unfinished > 0:
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._unfinished <= 0

    def close(self, timeout: float | None) -> bool:
        """Finish what is queued (up to ``timeout``) and stop the thread; what is left is discarded."""
        done = self.flush(timeout)
        self._closed = True
        with self._cond:
            self._stop = True
            thread = self._thread
            left = [*self._high, *self._low]
            self._unfinished -= len(left)
            self._high.clear()
            self._low.clear()
            self._cond.notify_all()
        self._dropped(left)
        if thread is not None and thread is not threading.current_thread():
            thread.join(0.5 if timeout is None else min(timeout, 0.5))
        return done
