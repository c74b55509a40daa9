"""``db`` spans for ``sqlite3`` queries, when tracing is on.

``sqlite3.Connection`` is a C type whose methods cannot be patched, so ``sqlite3.connect`` is wrapped:
while the client traces, a connection opened without a ``factory`` of its own is made of a subclass
whose ``execute``/``executemany``/``executescript`` and cursors time each statement. Connections
opened while tracing is off are plain ones and cost nothing. The span's description is the
statement as written (with its ``?`` placeholders: parameter values are never recorded).

``sqlite3`` is patched only once the app imports it (``init()`` does not import it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals
from .._tracing import end_child, start_child
from ._common import Integration, Patches

__all__ = ["SqliteIntegration"]


def _run(conn: Any, sql: Any, call: Callable[[], Any]) -> Any:
    name = getattr(conn, "_tripwire_db", "sqlite")
    span = start_child("db", sql if isinstance(sql, str) else None, {"db.system": "sqlite", "db.name": name})
    if span is None:
        return call()
    try:
        result = call()
    except BaseException as exc:
        end_child(span, exc)
        raise
    end_child(span)
    return result


def _traced_factory(sqlite3: ModuleType) -> type:
    """The connection subclass (and its cursor class) for this ``sqlite3`` module."""

    class TracedCursor(sqlite3.Cursor):  # type: ignore[misc,name-defined]
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return _run(self.connection, sql, lambda: super(TracedCursor, self).execute(sql, parameters))

        def executemany(self, sql: str, seq: Any, /) -> Any:
            return _run(self.connection, sql, lambda: super(TracedCursor, self).executemany(sql, seq))

        def executescript(self, script: str, /) -> Any:
            return _run(self.connection, script, lambda: super(TracedCursor, self).executescript(script))

    class TracedConnection(sqlite3.Connection):  # type: ignore[misc,name-defined]
        _tripwire_db = "sqlite"

        def cursor(self, factory: Any = TracedCursor) -> Any:
            return super().cursor(factory)

        # The C methods create their cursor without calling ``cursor()``: go through ours.
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            return self.cursor().executemany(sql, parameters)

        def executescript(self, script: str, /) -> Any:
            return self.cursor().executescript(script)

    return TracedConnection


def _wrap_connect(factory: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
            client = _globals.client
            if client is None or not client.tracing or args or "factory" in kwargs:
                # Positional arguments after the database would have to be re-mapped around
                # ``factory``; every example passes them by keyword, so those stay untraced.
                return original(database, *args, **kwargs)
            conn = original(database, factory=factory, **kwargs)
            try:
                name = os.fspath(database)
                conn._tripwire_db = os.path.basename(name) or "sqlite" if isinstance(name, str) else "sqlite"
            except Exception:
                pass
            return conn

        return connect

    return make


class SqliteIntegration(Integration):
    """Record ``sqlite3`` statements as ``db`` spans (see the module docstring)."""

    identifier: ClassVar[str] = "sqlite3"

    def __init__(self) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("sqlite3", self._patch)

    def _patch(self, module: ModuleType) -> None:
        # sqlite3.connect is a module function: replaced on the module (undo() puts it back).
        self._patches.replace(module, "connect", _wrap_connect(_traced_factory(module)))  # type: ignore[arg-type]

    def uninstall(self) -> None:
        self._patches.undo()
