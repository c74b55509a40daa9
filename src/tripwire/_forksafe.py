"""Locks that survive ``fork()``: a forked child gets fresh ones.

Another thread of the parent may hold a lock at the moment of the fork; the child has no such thread,
so that lock would stay held forever and the child's first capture (or count, or request) would wait
on it. Objects register here once; one at-fork hook renews every registered object's ``_lock``.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_owners: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_installed = False


def renew_lock_after_fork(owner: Any) -> None:
    """Give ``owner._lock`` a fresh ``threading.Lock`` in every forked child (``owner`` is weakly held)."""
    global _hook_installed
    if not _hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_renew_locks)
        _hook_installed = True
    _owners.add(owner)


def _renew_locks() -> None:
    for owner in list(_owners):
        owner._lock = threading.Lock()
