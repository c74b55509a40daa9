"""The one fork strategy of the SDK: objects that hold threads or locks are renewed in a forked child.

``fork()`` copies the memory of every thread but keeps only the one that called it. In the child a
lock another thread held at that moment stays held forever, and a queue whose thread did not survive
is never drained. Objects register here once; one ``os.register_at_fork`` hook then fixes every
registered object in the child, before any other code of the child runs:

- :func:`renew_lock_after_fork` gives ``owner._lock`` a fresh ``threading.Lock``;
- :func:`reset_after_fork` calls ``owner._after_fork_in_child()``, for objects with more state than a
  lock (a worker thread and its queue, a timer, a connection pool).

Nothing checks ``os.getpid()`` on the hot path, and nothing else installs an at-fork hook.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from ._log import logger

_locks: weakref.WeakSet[Any] = weakref.WeakSet()
_resets: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_installed = False


def _install() -> None:
    global _hook_installed
    if not _hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _hook_installed = True


def renew_lock_after_fork(owner: Any) -> None:
    """Give ``owner._lock`` a fresh ``threading.Lock`` in every forked child (``owner`` is weakly held)."""
    _install()
    _locks.add(owner)


def reset_after_fork(owner: Any) -> None:
    """Call ``owner._after_fork_in_child()`` in every forked child (``owner`` is weakly held)."""
    _install()
    _resets.add(owner)


def _after_fork_in_child() -> None:
    # Locks first: a reset may take a lock of another registered object (the spool's, say).
    for owner in list(_locks):
        owner._lock = threading.Lock()
    for owner in list(_resets):
        try:
            owner._after_fork_in_child()
        except Exception:
            # The child must start whatever happens; a half-reset reporter only loses its own events.
            logger.exception("tripwire: could not reset %r after fork", owner)
