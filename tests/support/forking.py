"""Fork while a lock is held, as if another thread were inside it, and see how the child fares."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Callable


def child_exit_code_after_fork_holding(
    lock: threading.Lock | threading.RLock, child: Callable[[], bool]
) -> int:
    """Fork with ``lock`` held; the child runs ``child()`` (0 if it returns True, 1 if False, killed
    by SIGALRM after 5 s if it blocks). The parent releases the lock and returns the child's code."""
    lock.acquire()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
            pid = os.fork()
        if pid == 0:  # the child
            signal.alarm(5)
            os._exit(0 if child() else 1)
    finally:
        lock.release()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
