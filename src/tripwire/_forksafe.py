"""Locks that survive ``fork()``: a forked child gets fresh ones.

Another thread of the parent may hold a lock at the moment of the fork; the child has no such thread,
so that lock would stay held forever and the child's first capture (or count, or request) would wait
on it. Objects register here once; one at-fork hook renews every registered object's ``_lock``.

Imports hold locks too. tripwire's threads import what they need on first use (the event builder,
``platform``, ``http.client``...); a child forked in the middle of such an import inherits a module
half executed, or its import lock held by a thread it does not have: its worker then fails on every
event, or waits forever (gunicorn ``--preload`` forks right after the master may have reported
something). So before a fork the forking thread imports them itself: an import under way in another
thread is waited for, and none is left for tripwire's threads to start between this hook and the
fork. That costs the first fork of the process the imports (~20 ms) the children would pay anyway.
Any other tripwire module still being imported is polled for, never waited on, up to a second.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref

TYPE_CHECKING = False  # typing's, without importing typing (3 ms): see _namedtuple.py
if TYPE_CHECKING:
    from typing import Any

_owners: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_installed = False


#: What tripwire's threads import on first use (keep in step with the function-level imports of the
#: worker's and senders' code paths).
_LAZY_IMPORTS = (
    "tripwire._event_builder", "tripwire._budget", "base64", "email.utils", "hashlib", "http.client",
    "importlib.metadata", "json", "linecache", "platform", "random", "re", "socket", "ssl",
    "urllib.parse", "urllib.request", "uuid", "zlib",
)
_IMPORT_WAIT = 1.0


def renew_lock_after_fork(owner: Any) -> None:
    """Give ``owner._lock`` a fresh lock of its kind in every forked child (``owner`` is weakly held)."""
    global _hook_installed
    if not _hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_finish_imports, after_in_child=_renew_locks)
        _hook_installed = True
    _owners.add(owner)


def _importing() -> list[str]:
    """tripwire modules being imported right now (started, not finished)."""
    modules = sys.modules
    return [
        name
        for name in list(modules)
        if name.startswith("tripwire.")
        and getattr(getattr(modules.get(name), "__spec__", None), "_initializing", False)
    ]


def _finish_imports() -> None:
    # Called by os.fork() in the forking thread, before the fork. Never raises into fork().
    try:
        state = sys.modules.get("tripwire._globals")
        if getattr(state, "client", None) is None:
            return  # no client, no threads of ours: nothing of ours is being imported
        import importlib

        for name in _LAZY_IMPORTS:
            try:
                importlib.import_module(name)
            except Exception:
                pass  # not there (a stripped-down build): then no thread of ours imports it either
        deadline = time.monotonic() + _IMPORT_WAIT
        while _importing() and time.monotonic() < deadline:
            time.sleep(0.001)
    except Exception:
        pass


_RLOCK = type(threading.RLock())


def _renew_locks() -> None:
    for owner in list(_owners):
        # Of the same kind: the locks a capture can reach are reentrant, so that a signal handler or
        # a finalizer that captures on a thread already inside tripwire does not deadlock it.
        owner._lock = threading.RLock() if isinstance(owner._lock, _RLOCK) else threading.Lock()
