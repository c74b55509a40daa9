"""The one fork strategy of the SDK: objects that hold threads or locks are renewed in a forked child.

``fork()`` copies the memory of every thread but keeps only the one that called it. In the child a
lock another thread held at that moment stays held forever, and a queue whose thread did not survive
is never drained. Objects register here once; one ``os.register_at_fork`` hook then fixes every
registered object in the child, before any other code of the child runs:

- :func:`renew_lock_after_fork` gives ``owner._lock`` a fresh lock of the same kind (the locks a
  capture can reach are reentrant: a signal handler or a ``__del__`` that captures on a thread
  already inside tripwire must not deadlock it);
- :func:`reset_after_fork` calls ``owner._after_fork_in_child()``, for objects with more state than a
  lock (a worker thread and its queue, a timer, a connection pool).

Imports hold locks too. tripwire's threads import what they need on first use (the event builder,
``platform``, ``http.client``...); a child forked in the middle of such an import inherits a module
half executed, or its import lock held by a thread it does not have: its worker then fails on every
event, or waits forever (gunicorn ``--preload`` forks right after the master may have reported
something). So the same hook, before a fork, has the forking thread import them itself: an import
under way in another thread is waited for, and none is left for tripwire's threads to start between
the hook and the fork. That costs the first fork of the process the imports (~20 ms) the children
would pay anyway. Any other tripwire module still being imported is polled for, up to a second.

Nothing checks ``os.getpid()`` on the hot path, and nothing else installs an at-fork hook.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from typing import Any

from ._log import logger

_locks: weakref.WeakSet[Any] = weakref.WeakSet()
_resets: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_installed = False
_RLOCK = type(threading.RLock())

#: What tripwire's threads import on first use (keep in step with the function-level imports of the
#: worker's and senders' code paths).
_LAZY_IMPORTS = (
    "tripwire._event_builder",
    "tripwire._budget",
    "base64",
    "email.utils",
    "encodings.idna",  # socket.getaddrinfo() looks the codec up on the first connect by host name
    "hashlib",
    "http.client",
    "importlib.metadata",
    "json",
    "linecache",
    "platform",
    "random",
    "re",
    "socket",
    "ssl",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "zlib",
)
_IMPORT_WAIT = 1.0


def _install() -> None:
    global _hook_installed
    if not _hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_finish_imports, after_in_child=_after_fork_in_child)
        _hook_installed = True


def renew_lock_after_fork(owner: Any) -> None:
    """Give ``owner._lock`` a fresh lock of its kind in every forked child (``owner`` is weakly held)."""
    _install()
    _locks.add(owner)


def reset_after_fork(owner: Any) -> None:
    """Call ``owner._after_fork_in_child()`` in every forked child (``owner`` is weakly held)."""
    _install()
    _resets.add(owner)


def _after_fork_in_child() -> None:
    # Locks first: a reset may take a lock of another registered object (the spool's, say).
    for owner in list(_locks):
        owner._lock = threading.RLock() if isinstance(owner._lock, _RLOCK) else threading.Lock()
    for owner in list(_resets):
        try:
            owner._after_fork_in_child()
        except Exception:
            # The child must start whatever happens; a half-reset reporter only loses its own events.
            logger.exception("tripwire: could not reset %r after fork", owner)


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

        client = getattr(state, "client", None)
        names: tuple[str, ...] = _LAZY_IMPORTS
        if getattr(client, "tracing", False):
            names += ("tripwire._transaction_builder",)  # only with tracing on: never loaded otherwise
        if getattr(client, "profiler", None) is not None:
            names += ("tripwire._profile_builder",)  # only with profiling on: never loaded otherwise
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:
                pass  # not there (a stripped-down build): then no thread of ours imports it either
        deadline = time.monotonic() + _IMPORT_WAIT
        while _importing() and time.monotonic() < deadline:
            time.sleep(0.001)
    except Exception:
        pass
