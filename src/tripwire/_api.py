"""The top-level functions of ``tripwire``: thin, never raising, nearly free when disabled."""

from __future__ import annotations

import atexit
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import _globals, _scope
from . import integrations as _integrations
from ._client import Client
from ._forksafe import reset_after_fork
from ._log import logger
from ._options import build_options
from ._types import LEVELS, Breadcrumb, Hint

_MAX_TAG_LENGTH = 200


def init(dsn: str | None = None, /, **options: Any) -> Client:
    """Configure tripwire and start reporting; returns the :class:`Client`.

    ``dsn`` (or ``TRIPWIRE_DSN``) sends events to a Sentry-protocol server; ``reporters=[...]`` adds
    other backends. With neither, tripwire is disabled and every call costs next to nothing.
    Raises :class:`ConfigurationError` for a wrong option: the only place tripwire raises.

    >>> import tripwire
    >>> client = tripwire.init("http://key@127.0.0.1:8000/1", release="1.2.3")  # doctest: +SKIP
    """
    if "dsn" in options:
        dsn = options.pop("dsn")
    opts = build_options(dsn, **options)
    integrations: list[Any] = []
    if opts.enabled:
        opts, integrations = _integrations.prepare(opts, release_given="release" in options)
    client = Client(opts)
    # Integrations end what they track (sessions) with the client that was active for them.
    _globals.uninstall_integrations()
    old, _globals.client = _globals.client, (client if opts.enabled else None)
    if old is not None:
        old.close(timeout=old.options.shutdown_timeout)
    if integrations:
        _integrations.install(integrations)
    if opts.debug:
        logger.setLevel(logging.DEBUG)
    if opts.enabled:
        _install_atexit()
    return client


_atexit_installed = False
_exit_wait_spent = False


def _install_atexit() -> None:
    """Deliver what is still queued when the interpreter exits: once per process, whatever init does."""
    global _atexit_installed
    if _atexit_installed:
        return
    atexit.register(_close_at_exit)
    _atexit_installed = True
    reset_after_fork(_child_end)


class _ChildEnd:
    """Registered with _forksafe (the SDK's one at-fork hook); lives as long as the process."""

    def _after_fork_in_child(self) -> None:
        _flush_before_the_child_ends()


_child_end = _ChildEnd()


def _flush_before_the_child_ends() -> None:
    """In a forked child: deliver before the process ends, also when it ends without atexit.

    ``multiprocessing`` (fork) ends its children with ``os._exit()`` after ``threading._shutdown()``:
    atexit never runs there, so what a pool worker captured last was lost.
    ``threading._register_atexit`` (what ``concurrent.futures`` uses) runs in both cases. Celery's
    pool children (billiard) skip that too; Celery tells them with a signal.
    """
    import threading

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(_flush_at_exit)
        celery_signals = sys.modules.get("celery.signals")
        if celery_signals is not None:
            _flush_when_celery_children_end(celery_signals)
    except Exception:
        logger.debug("tripwire: could not register the flush at a child's end", exc_info=True)


def _flush_when_celery_children_end(signals: Any) -> None:
    """Celery's pool children (billiard) end with ``os._exit()``, which skips atexit and threading's
    shutdown: one recycled right after a task (``--max-tasks-per-child``) lost what it had just
    logged. Celery sends ``worker_process_shutdown`` in the child first: flush there. Connected in
    the child, right after the fork (Celery is imported by then), so ``close()`` has nothing to undo
    in the parent."""
    try:
        signals.worker_process_shutdown.connect(
            _on_celery_child_end, weak=False, dispatch_uid="tripwire-flush"
        )
    except Exception:
        logger.debug("tripwire: could not hook Celery's worker_process_shutdown", exc_info=True)


def _on_celery_child_end(**_: Any) -> None:
    _flush_at_exit()


def _flush_at_exit() -> None:
    client = _globals.client
    if client is None:
        return
    try:
        if not client.flush(client.options.shutdown_timeout):
            # The whole shutdown_timeout is spent: close at exit counts the rest without waiting again.
            global _exit_wait_spent
            _exit_wait_spent = True
    except Exception:
        logger.debug("tripwire: flushing at thread shutdown failed", exc_info=True)


def _close_at_exit() -> None:
    # Silent on purpose: exiting programs should not print. What could not be delivered in
    # shutdown_timeout is spooled (with spool_dir) or counted, and logged at debug level.
    client = _globals.client
    if client is None:
        return
    try:
        # Integrations first: what they track (a process session) ends while it can still be sent.
        _globals.uninstall_integrations()
        client.close(timeout=0.0 if _exit_wait_spent else client.options.shutdown_timeout)
    except Exception:
        logger.debug("tripwire: closing at exit failed", exc_info=True)


def get_client() -> Client | None:
    """The active client, or None when tripwire is not initialised (or disabled)."""
    return _globals.client


def capture_exception(error: BaseException | None = None, **scope_kwargs: Any) -> str | None:
    """Report an exception (default: the one being handled). Returns the event id, or None.

    ``scope_kwargs`` apply to this event only: ``tags``, ``extras``, ``contexts``, ``user``,
    ``level``, ``fingerprint``; BugSnag's ``severity``, ``metadata``, ``context``, ``grouping_hash``;
    and ``message``: what was happening, sent with the exception (asphalt's ``report_exception``).
    """
    client = _globals.client
    if client is None:
        return None
    event_id = client.capture_exception(error, **scope_kwargs)
    if event_id is not None:
        _scope.isolation_holder().last_event_id = event_id
    return event_id


def notify(exception: BaseException | None = None, **options: Any) -> str | None:
    """BugSnag's ``bugsnag.notify(exc, context=, metadata=, severity=, user=, grouping_hash=)``:
    :func:`capture_exception` with those keywords (it takes them too)."""
    return capture_exception(exception, **options)


def capture_message(message: str, level: str = "info", **scope_kwargs: Any) -> str | None:
    """Report a message at ``level``. Returns the event id, or None."""
    client = _globals.client
    if client is None:
        return None
    if level not in LEVELS:
        logger.warning("tripwire: unknown level %r, using 'info'", level)
        level = "info"
    event_id = client.capture_message(message, level, **scope_kwargs)
    if event_id is not None:
        _scope.isolation_holder().last_event_id = event_id
    return event_id


def add_breadcrumb(
    message: str | Breadcrumb | None = None,
    *,
    category: str | None = None,
    level: str = "info",
    type: str = "default",
    data: Mapping[str, Any] | None = None,
    hint: Hint | None = None,
) -> None:
    """Record something that happened, to be sent with the next event of this unit of work.

    ``message`` may also be a whole breadcrumb dict (sentry-sdk's ``add_breadcrumb(crumb)``).
    """
    client = _globals.client
    if client is None or client.options.max_breadcrumbs == 0:
        return
    crumb: Breadcrumb = {"timestamp": time.time(), "type": type, "level": level}
    if isinstance(message, Mapping):
        # sentry-sdk's positional form, ``add_breadcrumb({"message": ..., "category": ...})``;
        # keywords given beside it win.
        try:
            crumb.update(message)
            if data:
                crumb["data"] = dict(data)
        except Exception:
            logger.warning("tripwire: add_breadcrumb could not read the breadcrumb it was given")
            return
        if category is not None:
            crumb["category"] = category
        client.add_breadcrumb(crumb, hint)
        return
    if message is not None:
        crumb["message"] = message
    if category is not None:
        crumb["category"] = category
    if data:
        try:
            crumb["data"] = dict(data)
        except Exception:
            crumb["data"] = {"value": data}  # not a mapping: kept as a value, represented later
    client.add_breadcrumb(crumb, hint)


def _tag_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:
            text = f"<unprintable {type(value).__name__}>"
    return text[:_MAX_TAG_LENGTH]


def set_tag(key: str, value: Any) -> None:
    """Set a tag (indexed, searchable; values are strings of up to 200 characters)."""
    holder = _scope.current_holder()
    holder.data = holder.data.with_tag(_tag_value(key), _tag_value(value))


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags at once."""
    try:
        items = {_tag_value(k): _tag_value(v) for k, v in tags.items()}
    except Exception:
        logger.warning("tripwire: set_tags expects a mapping, got %s", type(tags).__name__)
        return
    holder = _scope.current_holder()
    holder.data = holder.data.with_tags(items)


def set_extra(key: str, value: Any) -> None:
    """Attach arbitrary data (scrubbed and trimmed when the event is built)."""
    holder = _scope.current_holder()
    holder.data = holder.data.with_extra(_tag_value(key), value)


def set_context(key: str, value: Mapping[str, Any] | None) -> None:
    """Set a named context (``{"os": {...}}``-style structured data); None removes it."""
    holder = _scope.current_holder()
    if value is None:
        contexts = {k: v for k, v in holder.data.contexts.items() if k != key}
        holder.data = _scope.replace_field(holder.data, contexts=contexts)
    else:
        holder.data = holder.data.with_context(_tag_value(key), value)


def set_user(user: Mapping[str, Any] | None) -> None:
    """Set the user (``id``, ``email``, ``username``, ``ip_address``, ...); None clears it."""
    try:
        value = dict(user) if user else None
    except Exception:
        logger.warning("tripwire: set_user expects a mapping, got %s", type(user).__name__)
        return
    holder = _scope.current_holder()
    holder.data = _scope.replace_field(holder.data, user=value)


def set_level(level: str | None) -> None:
    """Override the level of events from this scope."""
    if level is not None and level not in LEVELS:
        logger.warning("tripwire: unknown level %r ignored", level)
        return
    holder = _scope.current_holder()
    holder.data = _scope.replace_field(holder.data, level=level)


def set_fingerprint(fingerprint: list[str] | None) -> None:
    """Group events from this scope by ``fingerprint`` (``"{{ default }}"`` expands server-side)."""
    holder = _scope.current_holder()
    try:
        value = tuple(_tag_value(part) for part in fingerprint) if fingerprint else None
    except Exception:
        logger.warning("tripwire: set_fingerprint expects a list of strings")
        return
    holder.data = _scope.replace_field(holder.data, fingerprint=value)


def set_transaction(name: str | None) -> None:
    """Name what is being done (a route, a job); shown as the event's ``transaction``."""
    holder = _scope.current_holder()
    holder.data = _scope.replace_field(holder.data, transaction=name)


@contextmanager
def new_scope() -> Iterator[None]:
    """A local fork of the current scope: setters inside change it only, undone on exit.

    >>> with tripwire.new_scope():  # doctest: +SKIP
    ...     tripwire.set_tag("step", "import")
    ...     tripwire.capture_exception()
    """
    with _scope.new_scope():
        yield


@contextmanager
def isolation_scope() -> Iterator[None]:
    """A fresh scope for one unit of work (a request, a job); what the ASGI middleware uses."""
    with _scope.isolation_scope():
        yield


def last_event_id() -> str | None:
    """The id of the last event captured in this unit of work."""
    return _scope.isolation_holder().last_event_id


def flush(timeout: float | None = None) -> bool:
    """Wait until everything captured so far is delivered; False if ``timeout`` (s) ran out."""
    client = _globals.client
    return True if client is None else client.flush(timeout)


async def aflush(timeout: float | None = None) -> bool:
    """``flush()`` for async code: waits in a thread, so the event loop keeps running."""
    # Not a deferred import: whoever awaits this has asyncio loaded already.
    import asyncio

    return await asyncio.to_thread(flush, timeout)


def close(timeout: float | None = None) -> None:
    """Flush (up to ``timeout``), stop the worker and disable tripwire."""
    client = _globals.client
    _globals.uninstall_integrations()
    _globals.client = None
    if client is not None:
        client.close(timeout)


def start_profiler() -> None:
    """Start the continuous profiler (``profile_session_sample_rate`` set, ``profile_lifecycle="manual"``).

    It samples every thread's stack until :func:`stop_profiler` and sends ``profile_chunk`` items every
    ``profile_chunk_interval`` seconds. Does nothing when profiling is not configured, this process's
    session was not sampled, or the lifecycle is "trace".
    """
    client = _globals.client
    profiler = None if client is None else client.profiler
    if profiler is not None:
        profiler.start()


def stop_profiler() -> None:
    """Stop the continuous profiler started by :func:`start_profiler`; what it recorded is sent."""
    client = _globals.client
    profiler = None if client is None else client.profiler
    if profiler is not None:
        profiler.stop()


def stats() -> dict[str, Any]:
    """What was sent, dropped (by reason), and is still on its way.

    ``{"dropped": {reason: n}, "dropped_by": [{reason, category, reporter, quantity}], "sent":
    {reporter: n}, "queued": n (waiting for the worker), "pending": {reporter: n} (encoded, waiting
    to be sent), "spooled": {reporter: n} (on disk), "rate_limits": {reporter: {category: seconds}}}``.
    """
    client = _globals.client
    if client is None:
        return {
            "dropped": {},
            "dropped_by": [],
            "sent": {},
            "queued": 0,
            "pending": {},
            "spooled": {},
            "rate_limits": {},
        }
    snap = client.stats.snapshot()
    snap["queued"] = client._worker.pending
    pending: dict[str, int] = {}
    spooled: dict[str, int] = {}
    limits: dict[str, dict[str, float]] = {}
    for reporter in client.reporters:
        try:
            pending[reporter.name] = pending.get(reporter.name, 0) + int(getattr(reporter, "pending", 0))
            spooled[reporter.name] = spooled.get(reporter.name, 0) + int(getattr(reporter, "spooled", 0))
            active = getattr(reporter, "limits", None)
            if active is not None and active.active():
                limits[reporter.name] = active.active()
        except Exception:
            logger.debug("tripwire: reporter %s has no delivery stats", reporter.name, exc_info=True)
    snap.update(pending=pending, spooled=spooled, rate_limits=limits)
    return snap
