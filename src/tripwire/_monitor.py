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
from ._trace_api import job_transaction

if TYPE_CHECKING:
    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["capture", "capture_checkin", "end_session", "monitor", "start_session"]


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


#: What ``schedule="..."`` may be besides a crontab string: Sentry's schedule objects.
_CHECKIN_STATUSES = ("in_progress", "ok", "error")


def capture_checkin(
    monitor_slug: str | None = None,
    status: str | None = None,
    check_in_id: str | None = None,
    duration: float | None = None,
    monitor_config: Mapping[str, Any] | None = None,
) -> str | None:
    """Send a cron monitor check-in, as ``sentry_sdk.crons.capture_checkin`` does; return its id.

    ``status`` is ``"in_progress"`` when a run starts, then ``"ok"`` or ``"error"`` with the same
    ``check_in_id`` and the ``duration`` in seconds. ``monitor_config`` creates or updates the
    monitor on the collector: ``{"schedule": {"type": "crontab", "value": "0 3 * * *"},
    "timezone": "Europe/Paris", "checkin_margin": 5, "max_runtime": 30}`` (minutes). None when
    tripwire is not initialised or the check-in could not be queued (counted in ``stats()``).

    >>> cid = tripwire.capture_checkin("nightly-export", "in_progress")  # doctest: +SKIP
    >>> tripwire.capture_checkin("nightly-export", "ok", check_in_id=cid, duration=12.5)  # doctest: +SKIP
    """
    client = _globals.client
    if client is None or not monitor_slug or status not in _CHECKIN_STATUSES:
        return None
    try:
        import time
        import uuid

        check_in_id = check_in_id or uuid.uuid4().hex
        options = client.options
        payload: dict[str, Any] = {
            "type": "check_in",
            "check_in_id": str(check_in_id),
            "monitor_slug": str(monitor_slug),
            "status": status,
            "duration": None if duration is None else float(duration),
            "environment": options.environment,
            "release": options.release,
            "timestamp": time.time(),
        }
        if monitor_config:
            payload["monitor_config"] = dict(monitor_config)
        return check_in_id if client.submit_checkin(payload) else None
    except Exception:  # never into the job: a check-in is worth less than the job itself
        from ._log import logger

        logger.exception("tripwire: could not capture a check-in for %r", monitor_slug)
        return None


def _monitor_config(
    schedule: str | Mapping[str, Any] | None,
    timezone: str | None,
    checkin_margin: int | None,
    max_runtime: int | None,
    monitor_config: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    config = dict(monitor_config or {})
    if isinstance(schedule, str):
        config["schedule"] = {"type": "crontab", "value": schedule}
    elif schedule is not None:
        config["schedule"] = dict(schedule)
    extra = (("timezone", timezone), ("checkin_margin", checkin_margin), ("max_runtime", max_runtime))
    for key, value in extra:
        if value is not None:
            config[key] = value
    return config or None


@contextmanager
def _checked_in(slug: str | None, config: dict[str, Any] | None) -> Iterator[None]:
    """``in_progress`` on entry, then ``ok`` or ``error`` with the duration (no-op without a slug)."""
    if not slug:
        yield
        return
    import time

    started = time.monotonic()
    check_in_id = capture_checkin(slug, "in_progress", monitor_config=config)
    try:
        yield
    except BaseException:
        capture_checkin(slug, "error", check_in_id, time.monotonic() - started, config)
        raise
    capture_checkin(slug, "ok", check_in_id, time.monotonic() - started, config)


class _Monitor:
    """What ``monitor(...)`` returns: a decorator, and a context manager for a block."""

    def __init__(
        self,
        name: str | None,
        tags: Mapping[str, Any] | None,
        flush: bool,
        session: bool,
        slug: str | None,
        config: dict[str, Any] | None,
    ) -> None:
        self.name = name
        self.tags = tags
        self.flush = flush
        self.session = session
        self.slug = slug
        self.config = config
        self._open: list[Any] = []

    @contextmanager
    def _run(self, label: str | None, flush: bool) -> Iterator[None]:
        # The check-in sees the exception that capture() re-raises: "error", after it was reported.
        # The job's transaction (when tracing) encloses capture(), so that an error the job raises
        # is reported inside it and linked to it.
        with (
            _checked_in(self.slug, self.config),
            job_transaction(label or "job", "function.monitor"),
            capture(label, tags=self.tags, flush=flush, session=self.session),
        ):
            yield

    def __enter__(self) -> None:
        cm = self._run(self.name or self.slug, self.flush)
        cm.__enter__()
        self._open.append(cm)

    def __exit__(self, *exc_info: Any) -> bool | None:
        return bool(self._open.pop().__exit__(*exc_info))

    def __call__(self, func: F) -> F:
        label = self.name or getattr(func, "__qualname__", None) or repr(func)

        import inspect  # only when decorating: inspect is costly to import

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    with self._run(label, False):
                        return await func(*args, **kwargs)
                finally:
                    # Wait for delivery in a thread: the event loop keeps running meanwhile.
                    client = _globals.client
                    if self.flush and client is not None:
                        await aflush(client.options.shutdown_timeout)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._run(label, self.flush):
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]


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
        slug: str | None = None,
        schedule: str | Mapping[str, Any] | None = None,
        timezone: str | None = None,
        checkin_margin: int | None = None,
        max_runtime: int | None = None,
        monitor_config: Mapping[str, Any] | None = None,
    ) -> _Monitor: ...


def monitor(
    name: Any = None,
    *,
    tags: Mapping[str, Any] | None = None,
    flush: bool = False,
    session: bool = False,
    slug: str | None = None,
    schedule: str | Mapping[str, Any] | None = None,
    timezone: str | None = None,
    checkin_margin: int | None = None,
    max_runtime: int | None = None,
    monitor_config: Mapping[str, Any] | None = None,
) -> Any:
    """Run a function (sync or async) or a ``with`` block as a monitored job.

    Every call runs inside :func:`capture` (its own scope; an escaping exception is reported and
    re-raised); the transaction defaults to the function's qualified name. With ``slug``, each run
    also sends cron check-ins — ``in_progress``, then ``ok`` or ``error`` with its duration — and
    ``schedule`` (a crontab string, or ``{"type": "interval", "value": 10, "unit": "minute"}``),
    ``timezone``, ``checkin_margin`` and ``max_runtime`` (minutes) create or update the monitor,
    so the collector can tell when a run is missed or takes too long.

    >>> @tripwire.monitor()  # doctest: +SKIP
    ... def send_invoices(): ...
    >>> @tripwire.monitor(slug="nightly-export", schedule="0 3 * * *")  # doctest: +SKIP
    ... def nightly_export(): ...
    >>> with tripwire.monitor(slug="hourly-sync", schedule="0 * * * *"):  # doctest: +SKIP
    ...     sync()
    """
    if callable(name):
        return monitor()(name)
    config = _monitor_config(schedule, timezone, checkin_margin, max_runtime, monitor_config)
    return _Monitor(name, tags, flush, session, slug, config)


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
