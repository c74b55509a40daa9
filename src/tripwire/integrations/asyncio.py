"""asyncio: errors that only the event loop sees.

"Task exception was never retrieved", "Exception in callback ..." and the like reach the loop's
exception handler, not the app's code. tripwire wraps ``BaseEventLoop.call_exception_handler``, so
every loop — created before or after ``init()``, with or without a custom handler — reports the
exception (mechanism ``asyncio``, unhandled) and then calls the handler it would have called anyway:
a handler set with ``loop.set_exception_handler`` or the default one that logs. Contexts without an
exception (an unclosed transport, a slow callback) are passed on untouched, never swallowed.

With ``capture_tasks=True``, exceptions escaping tasks created by ``loop.create_task`` /
``asyncio.create_task`` are reported when they happen, even if the task is awaited later (off by
default: an exception awaited and handled by the app is not an incident).

The loops of asyncio and of uvloop are patched only once the app imports them: ``init()`` never imports
asyncio.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals
from ._common import Integration, Patches

__all__ = ["AsyncioIntegration", "report_loop_context"]

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200


def report_loop_context(context: dict[str, Any]) -> str | None:
    """Report the exception in an asyncio exception-handler ``context``; None if it has none."""
    exc = context.get("exception")
    client = _globals.client
    if client is None or not isinstance(exc, Exception):
        return None
    details: dict[str, Any] = {}
    for key in ("message", "task", "future", "handle"):
        value = context.get(key)
        if value is not None:
            try:
                details[key] = value if isinstance(value, str) else _repr.repr(value)
            except Exception:
                details[key] = f"<{type(value).__name__}>"
    return client.capture_exception(
        exc, mechanism={"type": "asyncio", "handled": False}, contexts={"asyncio": details}
    )


class AsyncioIntegration(Integration):
    """Report exceptions that reach the event loop's exception handler (see the module docstring)."""

    identifier: ClassVar[str] = "asyncio"

    def __init__(self, *, capture_tasks: bool = False) -> None:
        self.capture_tasks = capture_tasks
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("asyncio.base_events", self._patch)
        self._patches.when_imported("uvloop", self._patch_uvloop)

    def _patch(self, module: ModuleType) -> None:
        self._patch_loop_class(module.BaseEventLoop)

    def _patch_uvloop(self, module: ModuleType) -> None:
        # uvloop's loop does not inherit from BaseEventLoop; its Python subclass can be patched the
        # same way, and uvloop's own code looks the method up on the instance.
        self._patch_loop_class(module.Loop)

    def _patch_loop_class(self, cls: type) -> None:
        self._patches.replace(cls, "call_exception_handler", _wrap_handler)
        if self.capture_tasks:
            self._patches.replace(cls, "create_task", _wrap_create_task)

    def uninstall(self) -> None:
        self._patches.undo()


def _wrap_handler(original: Callable[..., None]) -> Callable[..., None]:
    def call_exception_handler(loop: Any, context: dict[str, Any]) -> None:
        try:
            report_loop_context(context)
        except Exception:
            pass
        # Whatever handler the loop has (custom or default) still gets every context.
        original(loop, context)

    return call_exception_handler


def _wrap_create_task(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_task(loop: Any, coro: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(coro, Coroutine):
            coro = _reporting(coro)
        return original(loop, coro, *args, **kwargs)

    return create_task


async def _reporting(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await coro
    except Exception as exc:
        client = _globals.client
        if client is not None:
            client.capture_exception(exc, mechanism={"type": "asyncio.task", "handled": False})
        # The task fails exactly as it would have; the caller still gets the same exception object.
        raise
