"""``@tripwire.serverless``: function handlers (AWS Lambda's ``(event, context)``, and generic ones).

A function runtime freezes or ends the process as soon as the handler returns, and kills it without
warning when the invocation runs out of time. So, per invocation: an isolation scope with
``contexts.serverless`` (request id, function name, remaining time); an escaping exception is
reported (mechanism ``serverless``, unhandled) and delivered *before* the very same exception is
re-raised; whatever was captured meanwhile is delivered before the handler returns — each wait
bounded by the invocation's remaining time; and a watchdog thread reports a warning event shortly
before the invocation would time out, while the process still runs. An invocation that captured
nothing and has nothing queued returns without waiting for anything.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import _globals, _scope
from ._log import logger

if TYPE_CHECKING:
    from ._client import Client

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["serverless"]

#: Kept back from the remaining time when flushing: the runtime needs a moment to return the result.
_SAFETY_MARGIN = 0.1


def _read(context: Any, *names: str) -> Any:
    for name in names:
        try:
            value = getattr(context, name, None)
        except Exception:
            value = None
        if value is not None:
            return value
    return None


def _remaining_seconds(context: Any) -> float | None:
    """What the runtime says is left of this invocation, in seconds; None if it does not say."""
    get = _read(context, "get_remaining_time_in_millis")
    if not callable(get):
        return None
    try:
        return max(0.0, float(get()) / 1000.0)
    except Exception:
        return None


def _invocation_context(context: Any, remaining: float | None) -> dict[str, Any]:
    info: dict[str, Any] = {}
    fields = (
        ("request_id", ("aws_request_id", "request_id", "invocation_id", "event_id")),
        ("function_name", ("function_name", "name")),
        ("function_version", ("function_version",)),
        ("invoked_function_arn", ("invoked_function_arn",)),
        ("memory_limit_in_mb", ("memory_limit_in_mb",)),
        ("log_group_name", ("log_group_name",)),
        ("log_stream_name", ("log_stream_name",)),
    )
    for key, names in fields:
        value = _read(context, *names)
        if isinstance(value, (str, int, float)):
            info[key] = value
    if remaining is not None:
        info["remaining_time_ms"] = int(remaining * 1000)
    return info


class _Watchdog:
    """One daemon thread per process that fires the timeout warning of the invocation running now.

    A thread per invocation would cost every invocation a thread start. This one is started once;
    re-arming it takes a lock, and wakes the thread only when the new deadline is earlier than the
    one it sleeps towards (a thread that wakes for a deadline that was disarmed or moved later just
    goes back to sleep): so a run of invocations costs no thread switch each.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._action: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        #: What the thread sleeps towards (None: until notified).
        self._sleeping_until: float | None = None

    def arm(self, deadline: float, action: Callable[[], None]) -> None:
        with self._cond:
            self._deadline, self._action = deadline, action
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="tripwire-serverless-watchdog", daemon=True
                )
                self._thread.start()
            elif self._sleeping_until is None or deadline < self._sleeping_until:
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = self._action = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._deadline is None or time.monotonic() < self._deadline:
                    self._sleeping_until = self._deadline
                    wait = None if self._deadline is None else self._deadline - time.monotonic()
                    self._cond.wait(wait)
                action, self._deadline, self._action = self._action, None, None
            if action is not None:
                try:
                    action()
                except Exception:
                    logger.exception("tripwire: the serverless timeout warning failed")


_watchdog = _Watchdog()


def _warn_of_timeout(
    client: Client, holder: _scope.ScopeHolder, remaining: float, margin: float
) -> Callable[[], None]:
    def warn() -> None:
        # Runs on the watchdog thread, inside the invocation's scope: its tags, user and context.
        token = _scope._isolation.set(holder)
        try:
            client.capture_message(
                f"WARNING: the function is about to time out ({remaining:.3f} s were left at its start)",
                "warning",
                tags={"serverless.timeout_warning": "true"},
            )
        finally:
            _scope._isolation.reset(token)
        # The runtime kills the process at its deadline: deliver now, in what is left of it.
        client.flush(min(float(client.options.shutdown_timeout), margin))

    return warn


def _flush(client: Client, context: Any) -> None:
    """Deliver what is queued, within the invocation's remaining time (no wait when nothing is)."""
    if not _has_work(client):
        return
    timeout = float(client.options.shutdown_timeout)
    remaining = _remaining_seconds(context)
    if remaining is not None:
        timeout = min(timeout, max(0.0, remaining - _SAFETY_MARGIN))
    try:
        client.flush(timeout)
    except Exception:
        logger.exception("tripwire: flushing at the end of an invocation failed")


def _has_work(client: Client) -> bool:
    try:
        if client._worker.pending:
            return True
        if client.sessions is not None:
            return True  # the aggregate of this invocation must leave before the freeze
        return any(getattr(reporter, "pending", 0) for reporter in client.reporters)
    except Exception:
        return True


class _Serverless:
    """What ``serverless(...)`` returns when called with options: a decorator."""

    def __init__(self, timeout_warning: bool, warning_margin: float, flush: bool) -> None:
        self.timeout_warning = timeout_warning
        self.warning_margin = warning_margin
        self.flush = flush

    def _enter(self, context: Any) -> tuple[Any, Any]:
        """The invocation's scope (installed) and its token; the watchdog armed if asked for."""
        remaining = _remaining_seconds(context)
        holder = _scope.new_holder(_scope.snapshot().for_new_unit_of_work())
        info = _invocation_context(context, remaining)
        data = holder.data.with_context("serverless", info)
        name = info.get("function_name")
        if isinstance(name, str):
            data = data._replace(transaction=name)
        holder.data = data
        token = _scope._isolation.set(holder)
        client = _globals.client
        if (
            client is not None
            and self.timeout_warning
            and remaining is not None
            and remaining > self.warning_margin
        ):
            deadline = time.monotonic() + remaining - self.warning_margin
            _watchdog.arm(deadline, _warn_of_timeout(client, holder, remaining, self.warning_margin))
        return holder, token

    def _exit(self, token: Any, context: Any, error: BaseException | None) -> None:
        _watchdog.disarm()
        try:
            client = _globals.client
            if client is None:
                return
            if error is not None:
                client.capture_exception(error, mechanism={"type": "serverless", "handled": False})
            if self.flush:
                _flush(client, context)
        finally:
            _scope._isolation.reset(token)

    def __call__(self, func: F) -> F:
        import inspect  # only when decorating: inspect is costly to import

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(event: Any, context: Any = None, *args: Any, **kwargs: Any) -> Any:
                _holder, token = self._enter(context)
                try:
                    result = await func(event, context, *args, **kwargs)
                except Exception as exc:
                    # Flushing blocks: in a thread, so the handler's event loop keeps running.
                    import asyncio

                    await asyncio.to_thread(self._exit, token, context, exc)
                    raise
                import asyncio

                await asyncio.to_thread(self._exit, token, context, None)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(event: Any, context: Any = None, *args: Any, **kwargs: Any) -> Any:
            _holder, token = self._enter(context)
            try:
                result = func(event, context, *args, **kwargs)
            except Exception as exc:
                self._exit(token, context, exc)
                raise
            self._exit(token, context, None)
            return result

        return run  # type: ignore[return-value]


if TYPE_CHECKING:  # the signatures type checkers see; at run time only the one below exists

    @overload
    def serverless(func: F, /) -> F: ...

    @overload
    def serverless(
        *, timeout_warning: bool = True, warning_margin: float = 1.5, flush: bool = True
    ) -> _Serverless: ...


def serverless(
    func: Any = None,
    /,
    *,
    timeout_warning: bool = True,
    warning_margin: float = 1.5,
    flush: bool = True,
) -> Any:
    """Wrap a function handler ``handler(event, context)`` (AWS Lambda's, or any runtime's).

    Each invocation runs in its own scope with ``contexts.serverless`` (``request_id``,
    ``function_name``, ``remaining_time_ms``, ...) and the function name as transaction. An exception
    escaping the handler is reported and delivered, then re-raised unchanged; what the invocation
    captured is delivered before it returns, waiting at most the invocation's remaining time (and
    ``shutdown_timeout``). With ``timeout_warning`` (default), a warning event is sent
    ``warning_margin`` seconds before the runtime's deadline, when the context tells the remaining
    time (``get_remaining_time_in_millis()``). Async handlers are supported.

    >>> @tripwire.serverless  # doctest: +SKIP
    ... def handler(event, context): ...
    >>> @tripwire.serverless(warning_margin=3.0)  # doctest: +SKIP
    ... def handler(event, context): ...
    """
    if callable(func):
        return _Serverless(timeout_warning, warning_margin, flush)(func)
    return _Serverless(timeout_warning, float(warning_margin), flush)
