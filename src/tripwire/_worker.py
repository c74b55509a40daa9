"""One background thread per client that turns capture snapshots into events and hands them on.

The caller only enqueues (non-blocking, bounded). The thread is started lazily on the first item and
again after ``fork()``, since a child process inherits the queue but not the thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("tripwire")

_STOP = object()


class Worker:
    def __init__(self, process: Callable[[Any], None], *, maxsize: int, name: str) -> None:
        self._process = process
        self._maxsize = maxsize
        self._name = name
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False

    def submit(self, job: Any) -> bool:
        """Queue a job without blocking; False if the queue is full or the worker is closed."""
        if self._closed:
            return False
        if self._thread is None or self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                # After fork the parent's queue may hold items whose lock state is undefined.
                self._queue = queue.Queue(self._maxsize)
                self._thread = None
                self._pid = os.getpid()
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        q = self._queue
        while True:
            job = q.get()
            try:
                if job is _STOP:
                    return
                self._process(job)
            except Exception:
                logger.exception("tripwire: worker failed to process a job")
            finally:
                q.task_done()

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything queued so far is processed; False on timeout."""
        q = self._queue
        deadline = None if timeout is None else time.monotonic() + timeout
        with q.all_tasks_done:
            while q.unfinished_tasks:
                if deadline is None:
                    q.all_tasks_done.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                q.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float | None) -> bool:
        """Finish what is queued (up to ``timeout``) and stop the thread."""
        done = self.flush(timeout)
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                pass
            thread.join(0.5 if timeout is None else min(timeout, 0.5))
        return done
