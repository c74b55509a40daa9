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
from .._tracing import active_var, end_child, start_child
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
    """The connection subclass (and its cursor class) for this ``sqlite3`` module.

    Each method first asks whether a sampled span is active (one context-variable read): if not,
    it calls the C method itself, so an unsampled request's statements cost one Python call more
    than on a plain connection, and their cursors are plain ones.
    """
    cursor_execute = sqlite3.Cursor.execute
    cursor_executemany = sqlite3.Cursor.executemany
    cursor_executescript = sqlite3.Cursor.executescript
    conn_execute = sqlite3.Connection.execute
    conn_executemany = sqlite3.Connection.executemany
    conn_executescript = sqlite3.Connection.executescript
    active = active_var.get

    class TracedCursor(sqlite3.Cursor):  # type: ignore[misc,name-defined]
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            if active() is None:
                return cursor_execute(self, sql, parameters)
            return _run(self.connection, sql, lambda: cursor_execute(self, sql, parameters))

        def executemany(self, sql: str, seq: Any, /) -> Any:
            if active() is None:
                return cursor_executemany(self, sql, seq)
            return _run(self.connection, sql, lambda: cursor_executemany(self, sql, seq))

        def executescript(self, script: str, /) -> Any:
            if active() is None:
                return cursor_executescript(self, script)
            return _run(self.connection, script, lambda: cursor_executescript(self, script))

    class TracedConnection(sqlite3.Connection):  # type: ignore[misc,name-defined]
        _tripwire_db = "sqlite"

        def cursor(self, factory: Any = TracedCursor) -> Any:
            return super().cursor(factory)

        # The C methods create their cursor without calling ``cursor()``: when traced, go through ours.
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            if active() is None:
                return conn_execute(self, sql, parameters)
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            if active() is None:
                return conn_executemany(self, sql, parameters)
            return self.cursor().executemany(sql, parameters)

        def executescript(self, script: str, /) -> Any:
            if active() is None:
                return conn_executescript(self, script)
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
