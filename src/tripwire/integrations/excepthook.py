"""Unhandled exceptions: ``sys.excepthook`` (the main thread) and ``threading.excepthook`` (threads).

Both hooks are chained: the previous hook (by default the one that prints the traceback) still runs,
right after tripwire has taken its cheap snapshot. The main-thread hook then flushes, so the report
leaves before the interpreter exits. ``uninstall()`` puts the previous hooks back; if someone wrapped
ours in the meantime, ours stays in their chain but passes everything straight through.

``KeyboardInterrupt`` and ``SystemExit`` are not errors and are never reported. In an interactive
interpreter the main-thread hook reports only with ``always_run=True``.
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from .. import _globals, _scope
from .._sessions import ApplicationSession, end_application_session
from ._common import Integration

if TYPE_CHECKING:
    ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]
    ThreadHook = Callable[[Any], Any]

__all__ = ["ExcepthookIntegration"]


class ExcepthookIntegration(Integration):
    """Report uncaught exceptions of the main thread and of other threads.

    ``threads=False`` leaves ``threading.excepthook`` alone. ``flush_timeout`` (default: the
    ``shutdown_timeout`` option) bounds how long the main-thread hook waits for delivery.
    """

    identifier: ClassVar[str] = "excepthook"

    def __init__(
        self, *, threads: bool = True, always_run: bool = False, flush_timeout: float | None = None
    ) -> None:
        self.threads = threads
        self.always_run = always_run
        self.flush_timeout = flush_timeout
        self._active = False
        self._previous: ExceptHook | None = None
        self._previous_thread: ThreadHook | None = None
        self._hook: ExceptHook | None = None
        self._thread_hook: ThreadHook | None = None
        self._thread_crashed = False

    def install(self) -> None:
        previous = sys.excepthook
        previous_thread = threading.excepthook
        integration = self

        def tripwire_excepthook(
            exc_type: type[BaseException], value: BaseException, tb: TracebackType | None
        ) -> Any:
            active = integration._active
            if active:
                integration._report_main(value)
                # In an interactive interpreter the process goes on after an uncaught exception.
                if not hasattr(sys, "ps1"):
                    integration._end_session()
            try:
                return previous(exc_type, value, tb)
            finally:
                # The process is about to end: deliver this report and anything captured before it.
                if active and not isinstance(value, KeyboardInterrupt):
                    integration._flush()

        def tripwire_threading_excepthook(args: Any) -> Any:
            if integration._active:
                integration._report_thread(args)
            return previous_thread(args)

        self._previous, self._hook = previous, tripwire_excepthook
        sys.excepthook = tripwire_excepthook
        if self.threads:
            self._previous_thread, self._thread_hook = previous_thread, tripwire_threading_excepthook
            threading.excepthook = tripwire_threading_excepthook
            # A crashed thread does not end the process; deliver its report when the process ends.
            atexit.register(self._flush_at_exit)
        self._active = True

    def uninstall(self) -> None:
        self._active = False
        atexit.unregister(self._flush_at_exit)
        if self._hook is not None and sys.excepthook is self._hook and self._previous is not None:
            sys.excepthook = self._previous
        if (
            self._thread_hook is not None
            and threading.excepthook is self._thread_hook
            and self._previous_thread is not None
        ):
            threading.excepthook = self._previous_thread
        self._hook = self._thread_hook = None

    def _report_main(self, value: BaseException) -> bool:
        if not isinstance(value, Exception):
            return False  # KeyboardInterrupt, SystemExit, GeneratorExit
        if hasattr(sys, "ps1") and not self.always_run:
            return False  # an interactive session: a typo is not an incident
        client = _globals.client
        if client is None:
            return False
        event_id = client.capture_exception(
            value, mechanism={"type": "excepthook", "handled": False}, level="fatal"
        )
        return event_id is not None

    def _end_session(self) -> None:
        # The process is dying: a session started with start_session() ends now (crashed), or never.
        client = _globals.client
        if client is None:
            return
        try:
            if isinstance(_scope.isolation_holder().session, ApplicationSession):
                end_application_session(client)
        except Exception:
            pass

    def _report_thread(self, args: Any) -> None:
        value = getattr(args, "exc_value", None)
        if not isinstance(value, Exception):
            return
        client = _globals.client
        if client is None:
            return
        thread = getattr(args, "thread", None)
        contexts = {}
        if thread is not None:
            contexts["thread"] = {"name": thread.name, "id": thread.ident, "daemon": thread.daemon}
        event_id = client.capture_exception(
            value, mechanism={"type": "threading", "handled": False}, contexts=contexts
        )
        if event_id is not None:
            self._thread_crashed = True

    def _flush_at_exit(self) -> None:
        if self._thread_crashed and self._active:
            self._flush()

    def _flush(self) -> None:
        client = _globals.client
        if client is None:
            return
        timeout = self.flush_timeout
        if timeout is None:
            timeout = client.options.shutdown_timeout
        try:
            client.flush(timeout)
        except Exception:
            pass
