"""Scope propagation into threads and thread pools.

A thread started with ``threading.Thread.start`` and a function given to
``concurrent.futures.ThreadPoolExecutor.submit`` (which ``loop.run_in_executor`` uses) run in a copy of
the starting code's context — what ``asyncio.to_thread`` already does. So a background job's error
carries the tags, user and breadcrumbs of the request that started it, and what the job sets is seen
by that request's scope too (they share one unit of work).

``ThreadPoolExecutor`` is patched only once the app imports ``concurrent.futures``' thread pool.

With profiling configured, a function that anyio runs in its thread pool on behalf of a profiled transaction
(Starlette and FastAPI run sync endpoints and dependencies that way) makes its thread the profile's
active thread, as sentry-sdk's Starlette integration does: the profile's "where the request's time
went" then points at the thread that did the work, not at the idle event loop.
Turn propagation off with ``ThreadingIntegration(propagate_scope=False)`` or
``disabled_integrations=["threading"]``; uncaught exceptions in threads are reported by the
``excepthook`` integration either way.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals
from .._tracing import active_span
from ._common import Integration, Patches

__all__ = ["ThreadingIntegration"]


class ThreadingIntegration(Integration):
    """Run threads and thread-pool work in a copy of the context that started them."""

    identifier: ClassVar[str] = "threading"

    def __init__(self, *, propagate_scope: bool = True, propagate_hub: bool | None = None) -> None:
        # ``propagate_hub`` is sentry-sdk 1.x's name for the same switch: copied configuration works.
        self.propagate_scope = propagate_scope if propagate_hub is None else bool(propagate_hub)
        self._patches = Patches()

    def install(self) -> None:
        if not self.propagate_scope:
            return
        self._patches.replace(threading.Thread, "start", _wrap_start)
        self._patches.when_imported("concurrent.futures.thread", self._patch_executor)
        client = _globals.client
        if client is not None and client.profiler is not None:
            self._patches.when_imported("anyio.to_thread", self._patch_anyio)

    def _patch_anyio(self, module: ModuleType) -> None:
        # A module function: Patches.replace works on any object with a __dict__ (typed for classes).
        self._patches.replace(module, "run_sync", _wrap_run_sync)  # type: ignore[arg-type]

    def _patch_executor(self, module: ModuleType) -> None:
        self._patches.replace(module.ThreadPoolExecutor, "submit", _wrap_submit)

    def uninstall(self) -> None:
        self._patches.undo()


def _wrap_start(original: Callable[..., None]) -> Callable[..., None]:
    def start(self: threading.Thread) -> None:
        # Thread.run is looked up on the instance at run time, so binding it here is enough.
        # tripwire's own threads must not keep a request's scope alive for the life of the process.
        if not getattr(self, "_tripwire_context", False) and not self.name.startswith("tripwire"):
            self._tripwire_context = True  # type: ignore[attr-defined]
            context = contextvars.copy_context()
            # A partial of the C-level Context.run adds no frame to the thread's tracebacks.
            self.run = functools.partial(context.run, self.run)  # type: ignore[method-assign]
        original(self)

    return start


def _wrap_submit(original: Callable[..., Any]) -> Callable[..., Any]:
    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return original(self, contextvars.copy_context().run, fn, *args, **kwargs)

    return submit


def _wrap_run_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    async def run_sync(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        span = active_span()
        profile = None if span is None else span.transaction.profile
        if profile is not None and profile.recording is not None:
            func = functools.partial(_as_active_thread, profile.recording, func)
        return await original(func, *args, **kwargs)

    return run_sync


def _as_active_thread(recording: Any, func: Callable[..., Any], /, *args: Any) -> Any:
    # On the pool's thread: the transaction's work runs here from now on.
    recording.active_thread_id = threading.get_ident()
    return func(*args)
