"""Report each exception object at most once, whichever layer sees it first.

A handler, the ASGI middleware, the logging integration and the excepthook may all see the same
exception. The mark lives on the exception object itself (a private key in its ``__dict__``, which every
``BaseException`` has): no global table, nothing kept alive, and it is gone when the exception is
collected. Built-in exceptions cannot be weakly referenced, so a table of weak references would have to
hold them strongly — with their tracebacks, frames and locals.

The mark names the registry (one per client), so a new client after ``init()`` reports afresh.
Exceptions whose ``__dict__`` cannot be written (none in CPython, but a C extension could try) fall back
to a weak table.
"""

from __future__ import annotations

import weakref

_KEY = "_tripwire_reported"


class ReportedRegistry:
    __slots__ = ("__weakref__", "_me", "_refs")

    def __init__(self) -> None:
        self._refs: weakref.WeakSet[BaseException] = weakref.WeakSet()
        self._me = weakref.ref(self)

    def seen(self, exc: BaseException) -> bool:
        state = getattr(exc, "__dict__", None)
        if isinstance(state, dict):
            mark = state.get(_KEY)
            return mark is not None and mark() is self
        try:
            return exc in self._refs
        except TypeError:
            return False

    def mark(self, exc: BaseException) -> None:
        state = getattr(exc, "__dict__", None)
        if isinstance(state, dict):
            state[_KEY] = self._me
            return
        try:
            self._refs.add(exc)
        except TypeError:
            pass  # neither a __dict__ nor weak references: it may be reported twice, never kept alive

    def clear(self) -> None:
        """Forget the exceptions marked by the fallback table (marks on objects name this registry)."""
        self._refs.clear()
