"""Several HTTP processes on one listening socket (``tripwire serve --workers N``).

One CPython process answers ingest requests on one core at most. With ``--workers N`` the
server forks N - 1 more processes after binding its socket; each accepts connections from the
same socket (the kernel hands every connection to one of them) and runs its own event loop,
intake writer and database connections. The first process alone runs the digest child process.

The processes share nothing but the database, as separate ``tripwire serve`` processes behind a
load balancer do (docs/collector.md): the per-minute quota, the refusal limiter, the bytes-in-flight
budget and the refusal counters are each process's own. Queue rows, rollups, counters, the alert
outbox and the cron clock are settled in the database, so they stay exact whatever N is. SQLite
has one writer at a time, so more processes would only queue for its lock: PostgreSQL only.

A worker is ended with SIGTERM (a graceful uvicorn shutdown: in-flight envelopes are committed)
when the first process stops, and by the kernel if the first process dies without stopping them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

#: Linux prctl option: a signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def fork_workers(count: int, run: Callable[[], None]) -> list[int]:
    """Fork ``count`` processes that each call ``run()`` and exit; return their pids.

    Call before this process starts an event loop, threads or database connections: a fork
    copies only the calling thread, and a connection must not be shared by two processes.
    """
    pids = []
    parent = os.getpid()
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                _die_with_parent(parent)
                run()
            except BaseException:
                # A worker reports and exits: it must never return into the parent's code.
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    return pids


def stop_workers(pids: list[int], timeout: float = 15.0) -> None:
    """SIGTERM the workers, wait up to ``timeout`` seconds for them, then SIGKILL the rest."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                alive.discard(pid)
        if alive:
            time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _die_with_parent(parent: int) -> None:
    # A worker must not keep serving (and holding the port) after the first process is killed.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)  # the parent died before the line above took effect
