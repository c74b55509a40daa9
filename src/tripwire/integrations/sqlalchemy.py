"""``db`` spans for SQLAlchemy (core and ORM), from its ``before_cursor_execute`` and
``after_cursor_execute`` engine events, when tracing.

The listeners are registered on the ``Engine`` class, so every engine gets them, made before or
after ``init()``. The description is the statement SQLAlchemy sends, with its placeholders:
parameter values are never recorded; ``db.system`` is the dialect's name and ``db.name`` the
database of the engine's URL. While the statement runs its span is the active one, so the driver's
own integration (sqlite3, psycopg) does not record the same statement a second time.

SQLAlchemy is hooked only once the app imports it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

from .._tracing import activate, deactivate, end_child, start_child
from ._common import Integration, Patches

__all__ = ["SqlalchemyIntegration"]

#: Where the span of a statement waits between the two events (the execution context is per statement).
_ATTR = "_tripwire_span"


def _before(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
    try:
        data: dict[str, Any] = {"db.system": conn.dialect.name}
        database = conn.engine.url.database
        if database:
            data["db.name"] = database
        span = start_child("db", statement if isinstance(statement, str) else None, data)
        if span is None or context is None:
            return
        setattr(context, _ATTR, (span, activate(span)))
    except Exception:
        pass


def _after(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool) -> None:
    _end(context, None)


def _error(exception_context: Any) -> None:
    _end(exception_context.execution_context, exception_context.original_exception or RuntimeError())


def _end(context: Any, error: BaseException | None) -> None:
    try:
        pending = context.__dict__.pop(_ATTR, None) if context is not None else None
        if pending is None:
            return
        span, token = pending
        try:
            deactivate(token)
        except ValueError:  # ended in another context than it started in (a greenlet switch)
            pass
        end_child(span, error)
    except Exception:
        pass


class SqlalchemyIntegration(Integration):
    """Record SQLAlchemy statements as ``db`` spans (see the module docstring)."""

    identifier: ClassVar[str] = "sqlalchemy"

    def __init__(self) -> None:
        self._patches = Patches()
        self._listening = False

    def install(self) -> None:
        self._patches.when_imported("sqlalchemy", self._listen)

    def _listen(self, module: ModuleType) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", _before)
        event.listen(Engine, "after_cursor_execute", _after)
        event.listen(Engine, "handle_error", _error)
        self._listening = True

    def uninstall(self) -> None:
        self._patches.undo()
        if self._listening:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            for name, listener in (
                ("before_cursor_execute", _before),
                ("after_cursor_execute", _after),
                ("handle_error", _error),
            ):
                if event.contains(Engine, name, listener):
                    event.remove(Engine, name, listener)
            self._listening = False
