"""``db`` spans for ``sqlite3`` queries, when tracing is on.

``sqlite3.Connection`` is a C type whose methods cannot be patched, so ``sqlite3.connect`` is wrapped:
while the client traces, a connection opened without a ``factory`` of its own is made of a subclass
whose ``execute``/``executemany``/``executescript`` and cursors time each statement. Connections
opened while tracing is off are plain ones and cost nothing; so do the statements of a process that
has not sampled a transaction yet (see ``_traced_factory``). The span's description is the
statement as written (with its ``?`` placeholders: parameter values are never recorded).

``sqlite3`` is patched only once the app imports it (``init()`` does not import it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals
from .._tracing import active_var, end_child, start_child, when_sampled
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

    Until the process samples its first transaction (:func:`~tripwire._tracing.when_sampled`) the
    classes add nothing to a statement: ``execute`` and the others are the C methods, reached with
    no Python frame (only ``cursor()`` is ours, so that cursors opened before then are traced too).
    From then on each method first asks whether a sampled span is active (one context-variable
    read): if not, it calls the C method itself, and its cursors are plain ones.
    """
    cursor_execute = sqlite3.Cursor.execute
    cursor_executemany = sqlite3.Cursor.executemany
    cursor_executescript = sqlite3.Cursor.executescript
    conn_execute = sqlite3.Connection.execute
    conn_executemany = sqlite3.Connection.executemany
    conn_executescript = sqlite3.Connection.executescript
    active = active_var.get

    class TracedCursor(sqlite3.Cursor):  # type: ignore[misc,name-defined]
        pass

    def execute(self: Any, sql: str, parameters: Any = (), /) -> Any:
        if active() is None:
            return cursor_execute(self, sql, parameters)
        return _run(self.connection, sql, lambda: cursor_execute(self, sql, parameters))

    def executemany(self: Any, sql: str, seq: Any, /) -> Any:
        if active() is None:
            return cursor_executemany(self, sql, seq)
        return _run(self.connection, sql, lambda: cursor_executemany(self, sql, seq))

    def executescript(self: Any, script: str, /) -> Any:
        if active() is None:
            return cursor_executescript(self, script)
        return _run(self.connection, script, lambda: cursor_executescript(self, script))

    class TracedConnection(sqlite3.Connection):  # type: ignore[misc,name-defined]
        _tripwire_db = "sqlite"

        def cursor(self, factory: Any = TracedCursor) -> Any:
            return super().cursor(factory)

    # The C methods create their cursor without calling ``cursor()``: when traced, go through ours.
    def conn_execute_traced(self: Any, sql: str, parameters: Any = (), /) -> Any:
        if active() is None:
            return conn_execute(self, sql, parameters)
        return self.cursor().execute(sql, parameters)

    def conn_executemany_traced(self: Any, sql: str, parameters: Any, /) -> Any:
        if active() is None:
            return conn_executemany(self, sql, parameters)
        return self.cursor().executemany(sql, parameters)

    def conn_executescript_traced(self: Any, script: str, /) -> Any:
        if active() is None:
            return conn_executescript(self, script)
        return self.cursor().executescript(script)

    def switch_on() -> None:
        TracedCursor.execute = execute
        TracedCursor.executemany = executemany
        TracedCursor.executescript = executescript
        TracedConnection.execute = conn_execute_traced
        TracedConnection.executemany = conn_executemany_traced
        TracedConnection.executescript = conn_executescript_traced

    when_sampled(switch_on)
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
