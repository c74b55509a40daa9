"""``db`` spans for asyncpg (``Connection.execute``/``executemany``/``fetch``/``fetchrow``/
``fetchval``, and so pools), when tracing. The description is the statement with its ``$n``
placeholders: argument values are never recorded. asyncpg is patched only once the app imports it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

from ._common import Integration, Patches
from ._spans import statement_text, wrap_async

__all__ = ["AsyncpgIntegration"]

_METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


def _describe(conn: Any, query: Any = None, *args: Any, **kwargs: Any) -> tuple[str | None, dict[str, Any]]:
    data: dict[str, Any] = {"db.system": "postgresql"}
    params = getattr(conn, "_params", None)
    database = getattr(params, "database", None)
    if isinstance(database, str):
        data["db.name"] = database
    return statement_text(query), data


class AsyncpgIntegration(Integration):
    """Record asyncpg statements as ``db`` spans (see the module docstring)."""

    identifier: ClassVar[str] = "asyncpg"

    def __init__(self) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("asyncpg.connection", self._patch)

    def _patch(self, module: ModuleType) -> None:
        for name in _METHODS:
            self._patches.replace(module.Connection, name, wrap_async("db", _describe))

    def uninstall(self) -> None:
        self._patches.undo()
