"""Report each exception object at most once, whichever layer sees it first.

A handler, the ASGI middleware, the logging integration and the excepthook may all see the same
exception. Each client keeps a registry of the exceptions it reported, so a new client after ``init()``
reports afresh. Nothing is written on the exception: apps pickle, copy and compare the errors they
log (Celery sends a failed task's exception to its parent process, ``multiprocessing`` pools return
it), and a mark on the object would travel with it or, being a weak reference, break the pickling.

The registry must not keep exceptions alive either (their tracebacks hold frames and locals). An
exception whose class supports weak references (any class written in Python) is held weakly and
forgotten when it is collected. Built-in exceptions (``ValueError(...)``) cannot be weakly
referenced; for them the registry holds the exception's own ``__dict__`` — which every
``BaseException`` has, which refers to nothing but the app's attributes, and which no other live
object can have — as proof that the object at that address is still the one reported. Dicts whose
exception is gone are swept out (their only remaining reference is ours). Both tables are bounded:
past ``MAX_ENTRIES`` the oldest marks are dropped, which can only mean a second report, never a lost one.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any


def _orphan_count() -> int:
    # sys.getrefcount of a value held only by a dict, read into a local the way _sweep reads it:
    # measured rather than assumed, as interpreters count borrowed references differently.
    table: dict[int, dict[str, object]] = {0: {}}
    state = table.get(0)
    return sys.getrefcount(state)


_getrefcount = getattr(sys, "getrefcount", None)
_ORPHAN = _orphan_count() if _getrefcount is not None else 0


class ReportedRegistry:
    """The exceptions one client has reported (see the module docstring)."""

    __slots__ = ("__weakref__", "_me", "_next_sweep", "_refs", "_states")

    #: Marks kept at most; past it the oldest are forgotten.
    MAX_ENTRIES = 4096
    _FIRST_SWEEP = 256

    def __init__(self) -> None:
        # id(exc) -> weak reference (exceptions of Python classes) or exc.__dict__ (built-in ones).
        self._refs: dict[int, weakref.ref[BaseException]] = {}
        self._states: dict[int, dict[str, Any]] = {}
        self._next_sweep = self._FIRST_SWEEP
        self._me = weakref.ref(self)  # for the callbacks, which must not keep the registry alive

    def __len__(self) -> int:
        return len(self._refs) + len(self._states)

    def seen(self, exc: BaseException) -> bool:
        key = id(exc)
        ref = self._refs.get(key)
        if ref is not None and ref() is exc:
            return True
        state = self._states.get(key)
        return state is not None and getattr(exc, "__dict__", None) is state

    def mark(self, exc: BaseException) -> None:
        key = id(exc)
        try:
            self._refs[key] = weakref.ref(exc, self._forget_callback(key))
        except TypeError:
            pass
        else:
            self._states.pop(key, None)
            self._trim()
            return
        state = getattr(exc, "__dict__", None)  # created on first access: vars(exc) stays {}
        if not isinstance(state, dict):
            return  # neither weak references nor a __dict__: it may be reported twice, never kept alive
        self._states[key] = state
        if len(self._states) >= self._next_sweep:
            self._sweep()
            self._next_sweep = max(self._FIRST_SWEEP, 2 * len(self._states))
        self._trim()

    def clear(self) -> None:
        """Forget every mark."""
        self._refs.clear()
        self._states.clear()

    def _forget_callback(self, key: int) -> Any:
        registry = self._me

        def forget(ref: weakref.ref[BaseException]) -> None:
            # Runs while the exception is freed, before its address can be reused: only our entry.
            me = registry()
            if me is not None and me._refs.get(key) is ref:
                me._refs.pop(key, None)

        return forget

    def _trim(self) -> None:
        while len(self._refs) + len(self._states) > self.MAX_ENTRIES:
            table: dict[int, Any] = self._refs if len(self._refs) >= len(self._states) else self._states
            try:
                del table[next(iter(table))]  # the oldest mark (dicts keep insertion order)
            except (KeyError, RuntimeError, StopIteration):
                return  # changed under us by another thread: the next mark trims again

    def _sweep(self) -> None:
        """Drop the dicts whose exception is gone: nothing but this table refers to them any more."""
        if _getrefcount is None:
            return
        for key in list(self._states):
            state = self._states.get(key)
            if state is not None and _getrefcount(state) <= _ORPHAN:
                self._states.pop(key, None)
