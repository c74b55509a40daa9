"""``db.redis`` spans for redis-py (sync ``redis.Redis`` and ``redis.asyncio.Redis``), when tracing.

The description is the command and its key, never the values (``SET user:1``, ``HGETALL h``); a
pipeline is one span listing its commands' names. Commands whose first argument is not a key
(``AUTH``, ``HELLO``, ``EVAL``, ...) show the command name only. redis is patched only once the app
imports it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

from ._common import Integration, Patches
from ._spans import wrap_async, wrap_sync

__all__ = ["RedisIntegration"]

#: Commands whose first argument is not a key, or may be a secret.
_NO_KEY = frozenset(
    {
        "AUTH",
        "HELLO",
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "EVALSHA_RO",
        "FCALL",
        "FCALL_RO",
        "MIGRATE",
        "CLIENT",
        "CONFIG",
        "ACL",
        "SCRIPT",
        "FUNCTION",
        "PING",
        "ECHO",
        "SELECT",
        "SCAN",
        "INFO",
        "FLUSHDB",
        "FLUSHALL",
    }
)


def _db(client: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"db.system": "redis"}
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    if "db" in kwargs:
        data["db.name"] = str(kwargs["db"])
    return data


def _command(args: tuple[Any, ...]) -> str:
    if not args:
        return ""
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    name = name.upper()
    if len(args) > 1 and name.split(" ")[0] not in _NO_KEY:
        key = args[1]
        key = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        return f"{name} {key[:200]}"
    return name


def _describe_command(client: Any, *args: Any, **options: Any) -> tuple[str | None, dict[str, Any]]:
    return _command(args), _db(client)


def _describe_pipeline(pipeline: Any, *args: Any, **kwargs: Any) -> tuple[str | None, dict[str, Any]]:
    stack = getattr(pipeline, "command_stack", None) or []
    names = []
    for entry in stack[:50]:
        command_args = entry[0] if isinstance(entry, tuple) else getattr(entry, "args", ())
        if command_args:
            first = command_args[0]
            names.append((first.decode() if isinstance(first, bytes) else str(first)).upper())
    data = _db(pipeline)
    data["redis.commands"] = len(stack)
    return "PIPELINE " + " ".join(names), data


class RedisIntegration(Integration):
    """Record redis-py commands as ``db.redis`` spans (see the module docstring)."""

    identifier: ClassVar[str] = "redis"

    def __init__(self) -> None:
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("redis.client", self._patch_sync)
        self._patches.when_imported("redis.asyncio.client", self._patch_async)

    def _patch_sync(self, module: ModuleType) -> None:
        self._patches.replace(module.Redis, "execute_command", wrap_sync("db.redis", _describe_command))
        self._patches.replace(module.Pipeline, "execute", wrap_sync("db.redis", _describe_pipeline))

    def _patch_async(self, module: ModuleType) -> None:
        self._patches.replace(module.Redis, "execute_command", wrap_async("db.redis", _describe_command))
        self._patches.replace(module.Pipeline, "execute", wrap_async("db.redis", _describe_pipeline))

    def uninstall(self) -> None:
        self._patches.undo()
