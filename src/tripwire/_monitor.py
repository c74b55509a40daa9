"""Jobs, scripts and workers: ``@tripwire.monitor()``, ``with tripwire.capture():`` and sessions.

Both give each call its own isolation scope (what is set inside stays inside, like a request), report
an exception escaping it (mechanism ``monitor``, unhandled) and re-raise the very same object, so the
caller — a task queue, a CLI framework — sees exactly what it would have seen without tripwire.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import _globals, _scope
from ._api import _tag_value, aflush

if TYPE_CHECKING:
    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["capture", "end_session", "monitor", "start_session"]


@contextmanager
def capture(
    name: str | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
    flush: bool = False,
    session: bool = False,
) -> Iterator[None]:
    """Run a block as one unit of work: report an exception escaping it, then re-raise it.

    ``name`` becomes the event's transaction, ``tags`` are set on the block's scope, ``flush=True``
    waits for delivery when the block ends (for short-lived processes; it blocks, so in async code
    prefer ``@monitor(flush=True)``, which waits off the event loop), ``session=True`` counts the
    block as a release-health session.

    >>> with tripwire.capture("nightly-import", tags={"source": "s3"}):  # doctest: +SKIP
    ...     run_import()
    """
    with _scope.isolation_scope() as holder:
        if name is not None or tags:
            data = holder.data
            if name is not None:
                data = _scope.replace_field(data, transaction=name)
            if tags:
                data = data.with_tags({str(k): _tag_value(v) for k, v in tags.items()})
            holder.data = data
        started = session and start_session()
        try:
            yield
        except Exception as exc:
            client = _globals.client
            if client is not None:
                client.capture_exception(exc, mechanism={"type": "monitor", "handled": False})
            raise
        finally:
            client = _globals.client
            if started:
                end_session()
            if flush and client is not None:
                client.flush(client.options.shutdown_timeout)


if TYPE_CHECKING:  # the signatures type checkers see; at run time only the one below exists

    @overload
    def monitor(func: F, /) -> F: ...

    @overload
    def monitor(
        name: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        flush: bool = False,
        session: bool = False,
    ) -> Callable[[F], F]: ...


def monitor(
    name: Any = None,
    *,
    tags: Mapping[str, Any] | None = None,
    flush: bool = False,
    session: bool = False,
) -> Any:
    """Decorate a function (sync or async) so every call runs inside :func:`capture`.

    The transaction defaults to the function's qualified name.

    >>> @tripwire.monitor()  # doctest: +SKIP
    ... def send_invoices(): ...
    >>> @tripwire.monitor(name="sync", flush=True)  # doctest: +SKIP
    ... async def sync_accounts(): ...
    """
    if callable(name):
        return monitor()(name)

    def decorate(func: F) -> F:
        label = name or getattr(func, "__qualname__", None) or repr(func)
        options: dict[str, Any] = {"tags": tags, "flush": flush, "session": session}

        import inspect  # only when decorating: inspect is costly to import

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    with capture(label, tags=tags, session=session):
                        return await func(*args, **kwargs)
                finally:
                    # Wait for delivery in a thread: the event loop keeps running meanwhile.
                    client = _globals.client
                    if flush and client is not None:
                        await aflush(client.options.shutdown_timeout)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with capture(label, **options):
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def start_session(*, did: str | None = None) -> bool:
    """Start a release-health session for this process or job (outside a request).

    Errors captured until :func:`end_session` count on it: any error makes it ``errored``, an
    unhandled one ``crashed``. ``did`` identifies the user or device (default: the scope's user id).
    False when release health is off (no release set, or tripwire not initialised).
    """
    from ._sessions import start_application_session

    return start_application_session(_globals.client, did=did) is not None


def end_session(status: str | None = None) -> bool:
    """End the session started by :func:`start_session` and queue its final state for delivery.

    ``status`` overrides the outcome: ``"exited"``, ``"crashed"`` or ``"abnormal"``. False if no session
    was running.
    """
    if status is not None and status not in ("exited", "crashed", "abnormal", "ok"):
        status = None
    from ._sessions import end_application_session

    return end_application_session(_globals.client, status)
