"""Report each exception object at most once, whichever layer sees it first.

A handler, the ASGI middleware, the logging integration and the excepthook may all see the same
exception. A process-wide registry of weak references (not a per-context "last seen") catches all of
them, and forgets an exception as soon as it is garbage collected.
"""

from __future__ import annotations

import weakref


class ReportedRegistry:
    __slots__ = ("_refs", "_strong")

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[BaseException]] = {}
        # Exceptions that cannot be weakly referenced are kept (bounded) by identity.
        self._strong: dict[int, BaseException] = {}

    def seen(self, exc: BaseException) -> bool:
        ref = self._refs.get(id(exc))
        if ref is not None and ref() is exc:
            return True
        return self._strong.get(id(exc)) is exc

    def mark(self, exc: BaseException) -> None:
        key = id(exc)

        def forget(ref: weakref.ref[BaseException]) -> None:
            # The id may have been reused by a newer exception already: only drop our own ref.
            if self._refs.get(key) is ref:
                del self._refs[key]

        try:
            self._refs[key] = weakref.ref(exc, forget)
        except TypeError:
            if len(self._strong) > 1000:
                self._strong.clear()
            self._strong[key] = exc

    def clear(self) -> None:
        self._refs.clear()
        self._strong.clear()
