"""``db`` spans for psycopg 3 (``Cursor`` and ``AsyncCursor``, and so ``Connection.execute``), when
tracing. The description is the statement with its placeholders (``%s``): parameter values are
never recorded. psycopg is patched only once the app imports it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

from ._common import Integration, Patches
from ._spans import statement_text, wrap_async, wrap_sync

__all__ = ["PsycopgIntegration"]


def _describe(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> tuple[str | None, dict[str, Any]]:
    conn = cursor.connection
    data: dict[str, Any] = {"db.system": "postgresql"}
    try:
        data["db.name"] = conn.info.dbname
    except Exception:
        pass
    return statement_text(query, conn), data


class PsycopgIntegration(Integration):
    """Record psycopg 3 statements as ``db`` spans (see the module docstring)."""

    identifier: ClassVar[str] = "psycopg"

    def __init__(self) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("psycopg", self._patch)

    def _patch(self, module: ModuleType) -> None:
        for name in ("execute", "executemany"):
            self._patches.replace(module.Cursor, name, wrap_sync("db", _describe))
            self._patches.replace(module.AsyncCursor, name, wrap_async("db", _describe))

    def uninstall(self) -> None:
        self._patches.undo()
