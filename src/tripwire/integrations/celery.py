"""Celery: a scope per task execution, task failures reported, the enqueuing scope carried along.

Installed by :func:`tripwire.init` (identifier ``celery``); it does nothing until the app imports
Celery, and imports nothing of Celery's itself before that. In the producer and in the worker (the
pool children inherit it when they fork):

* ``before_task_publish`` (producer): the message gets a ``tripwire`` header with the enqueuing code's
  trace id, tags and user, so the request that called ``.delay()`` and the task that failed share
  ``contexts.trace.trace_id``; with tracing on, also ``sentry-trace`` and ``baggage`` headers (the
  names sentry-sdk uses, so either SDK continues the other's trace), and inside a sampled
  transaction a ``queue.submit.celery`` span around the publish. With ``monitor_beat_tasks=True``, a
  message sent by ``celery beat`` also names its schedule entry, and the worker sends cron check-ins.
* Celery's tracer (``celery.app.trace.build_tracer``, what runs each task in the worker, in a pool
  child and for ``apply()``) is wrapped: each execution runs in its own isolation scope with the
  task name as transaction, ``contexts.celery`` (task name, id, retries, queue) and the arguments in
  ``extra["celery-job"]`` (scrubbed and trimmed when the event is built, like every extra). The scope
  data is made only when something reads it (an error, a tag set by the task): a task that succeeds
  costs one small object and a context-variable swap. With tracing on, a sampled execution is a
  transaction (op ``queue.task.celery``, status ``ok`` or ``internal_error``) continuing the
  producer's trace. (Celery's ``task_prerun``/``task_postrun`` signals cost more per task than the
  whole scope: two signal dispatches with a lock each.)
* ``task_failure``: the task's exception, reported (mechanism ``celery``, unhandled) before Celery
  logs it, so the logging integration does not report it a second time. The exception object is
  left untouched: the prefork pool pickles it to the parent process. Exceptions the task declares
  expected (``Task.throws``) are not reported, and neither are retries (only the final failure of
  a retried task is), unless ``report_retries=True``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, ModuleType
from typing import Any, ClassVar

from .. import _globals, _scope
from .._log import logger
from .._sessions import CRASHED, ERRORED, EXITED
from .._tracing import (
    Span,
    Transaction,
    activate,
    active_span,
    child_span,
    deactivate,
    new_transaction,
    outgoing_headers,
    read_incoming,
    sample,
)
from ._common import Integration, Patches

__all__ = ["CeleryIntegration"]

#: The message header that carries the enqueuing scope.
HEADER = "tripwire"
#: The trace propagation headers (sentry-sdk's names: its workers read them, and it sends them).
TRACE_HEADERS = ("sentry-trace", "baggage")
_NOTHING: dict[str, Any] = {}
#: Tags carried in a message at most (the header travels with every message).
MAX_TAGS = 50
_USER_KEYS = ("id", "email", "username", "ip_address", "segment")


def _crontab_string(schedule: Any) -> str | None:
    parts = [
        getattr(schedule, name, None)
        for name in (
            "_orig_minute",
            "_orig_hour",
            "_orig_day_of_month",
            "_orig_month_of_year",
            "_orig_day_of_week",
        )
    ]
    if any(part is None for part in parts):
        return None
    return " ".join(str(part) for part in parts)


def beat_monitor_config(schedule: Any) -> dict[str, Any] | None:
    """The monitor configuration (Sentry's shape) for a beat schedule: crontab or interval."""
    crontab = _crontab_string(schedule)
    if crontab is not None:
        config: dict[str, Any] = {"schedule": {"type": "crontab", "value": crontab}}
        tz = getattr(schedule, "tz", None)
        if tz is not None:
            config["timezone"] = str(tz)
        return config
    run_every = getattr(schedule, "run_every", None)
    seconds = getattr(run_every, "total_seconds", None)
    if callable(seconds):
        total = int(seconds())
        if total >= 60 and total % 60 == 0:
            return {"schedule": {"type": "interval", "value": total // 60, "unit": "minute"}}
        return {"schedule": {"type": "interval", "value": max(1, total), "unit": "second"}}
    return None


def _capture_checkin() -> Any:
    """``tripwire.capture_checkin``, looked up when a check-in is sent.

    Not imported: ``_monitor`` imports ``_api``, which loads the integrations (an import cycle). A
    check-in is only sent while a client is active, so ``tripwire`` (which defines init) is loaded.
    """
    return sys.modules["tripwire"].capture_checkin


class TaskRun(_scope.ScopeHolder):
    """One task execution: its scope holder, its release-health session, its transaction if sampled.

    Made without ``__init__`` (see ``ScopeHolder``) by :meth:`CeleryIntegration._enter`, for every
    task. Its scope data is made from what the task started with the first time anything reads it
    (an error captured, a tag set by the task), as a request's ``Connection`` does: a task that
    succeeds without touching its scope never makes it.
    """

    __slots__ = (
        "_base",
        "_data",
        "args",
        "kwargs",
        "monitor",
        "name",
        "outcome",
        "request",
        "span_token",
        "started_at",
        "task_id",
        "token",
        "txn",
    )

    #: The enclosing scope's data when the task started, what the task's scope inherits.
    _base: _scope.ScopeData
    _data: _scope.ScopeData | None
    name: str
    task_id: Any
    args: Any
    kwargs: Any
    #: Celery's request dict of the execution (the message's headers, retries, delivery info).
    request: Mapping[str, Any]
    #: EXITED, then ERRORED or CRASHED as errors are reported (the session's outcome).
    outcome: int
    started_at: float
    #: A beat-scheduled task's cron check-in: (monitor slug, config, check-in id, monotonic start).
    monitor: tuple[str, dict[str, Any] | None, str | None, float] | None
    token: Token[_scope.ScopeHolder]
    txn: Transaction | None
    span_token: Token[Span | None] | None

    #: The execution made its tracing decision when it started (with tracing on).
    sampling_decided = True

    @property
    def data(self) -> _scope.ScopeData:
        data = self._data
        if data is None:
            data = self._data = self._make_data()
        return data

    @data.setter
    def data(self, value: _scope.ScopeData) -> None:
        self._data = value

    def _make_data(self) -> _scope.ScopeData:
        data = self._base
        request = self.request
        carried = request.get(HEADER)
        if type(carried) is dict:
            tags = carried.get("tags")
            if type(tags) is dict and tags:
                data = data.with_tags({str(k): str(v) for k, v in list(tags.items())[:MAX_TAGS]})
            user = carried.get("user")
            if type(user) is dict and user and data.user is None:
                data = _scope.replace_field(data, user=dict(user))
        name = self.name
        delivery = request.get("delivery_info")
        celery_context = {
            "task_name": name,
            "task_id": str(self.task_id),
            "retries": request.get("retries") or 0,
            "queue": delivery.get("routing_key") if type(delivery) is dict else None,
        }
        job = {"task_name": name, "args": list(self.args or ()), "kwargs": dict(self.kwargs or {})}
        return data._replace(
            breadcrumbs=(),
            processors=(),
            transaction=name,
            contexts=MappingProxyType({**data.contexts, "celery": celery_context}),
            extras=MappingProxyType({**data.extras, "celery-job": job}),
        )

    def mark_error(self, *, handled: bool) -> None:
        if not handled:
            self.outcome = CRASHED
        elif self.outcome == EXITED:
            self.outcome = ERRORED


class CeleryIntegration(Integration):
    """Report Celery task failures with the task's context; see the module docstring.

    ``report_retries``: also report the error of each retry (level ``warning``), not only the final
    failure. ``propagate_scope``: carry the enqueuing code's trace id, tags and user in the message
    headers (default True). ``monitor_beat_tasks``: send cron check-ins for tasks that ``celery beat``
    schedules, the schedule entry's name as monitor slug (default False).
    """

    identifier: ClassVar[str] = "celery"

    def __init__(
        self,
        *,
        report_retries: bool = False,
        propagate_scope: bool = True,
        monitor_beat_tasks: bool = False,
    ) -> None:
        self.report_retries = report_retries
        self.propagate_scope = propagate_scope
        self.monitor_beat_tasks = monitor_beat_tasks
        self._patches = Patches()
        self._signals: list[tuple[Any, str]] = []

    # -- install ---------------------------------------------------------------------------

    def install(self) -> None:
        self._patches.when_imported("celery", self._setup)

    def uninstall(self) -> None:
        for signal, uid in self._signals:
            try:
                signal.disconnect(dispatch_uid=uid)
            except Exception:
                logger.debug("tripwire: could not disconnect from %r", signal, exc_info=True)
        self._signals.clear()
        self._patches.undo()

    def _setup(self, _celery: ModuleType) -> None:
        signals: Any = __import__("celery.signals", fromlist=["signals"])

        connections = [
            (signals.before_task_publish, self._on_publish),
            (signals.after_task_publish, self._on_published),
            (signals.task_failure, self._on_failure),
            (signals.task_retry, self._on_retry),
        ]
        for signal, receiver in connections:
            uid = f"tripwire-{id(self)}-{receiver.__name__}"
            signal.connect(receiver, weak=False, dispatch_uid=uid)
            self._signals.append((signal, uid))
        # The tracer: where Celery builds it, and where the worker's consumer imported it by name
        # (when that module was loaded before init; loaded later, it imports the wrapped one).
        self._patches.when_imported("celery.app.trace", self._patch_tracer)
        self._patches.when_imported("celery.worker.consumer.consumer", self._patch_tracer)
        if self.monitor_beat_tasks:
            self._patches.when_imported("celery.beat", self._patch_beat)

    def _patch_tracer(self, module: ModuleType) -> None:
        if callable(getattr(module, "build_tracer", None)):
            holder: Any = module  # Patches.replace sets an attribute of a class; a module works alike
            self._patches.replace(holder, "build_tracer", self._wrap_build_tracer)

    def _patch_beat(self, beat: ModuleType) -> None:
        self._patches.replace(beat.Scheduler, "apply_entry", _wrap_apply_entry)

    # -- producer --------------------------------------------------------------------------

    def _on_publish(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        try:
            client = _globals.client
            if client is None or not isinstance(headers, dict) or HEADER in headers:
                return
            carried: dict[str, Any] = {}
            if self.propagate_scope:
                data = _scope.snapshot()
                carried["trace_id"] = _scope.trace_id()
                if data.tags:
                    carried["tags"] = dict(list(data.tags.items())[:MAX_TAGS])
                if data.user:
                    user = {k: str(data.user[k]) for k in _USER_KEYS if data.user.get(k) is not None}
                    if user:
                        carried["user"] = user
                if client.tracing:
                    self._trace_publish(client, sender, headers)
            entry = _beat_entry.get(None) if self.monitor_beat_tasks else None
            if entry is not None:
                carried["monitor"] = {"slug": entry[0], "config": entry[1]}
            if carried:
                headers[HEADER] = carried
        except Exception:
            logger.debug("tripwire: could not add the scope to a Celery message", exc_info=True)

    def _trace_publish(self, client: Any, sender: Any, headers: dict[str, Any]) -> None:
        """Tracing: a ``queue.submit.celery`` span for this publish, and the propagation headers."""
        parent = active_span()
        span = child_span(parent, "queue.submit.celery", str(sender)) if parent is not None else None
        if span is not None:
            span.data = {"messaging.message.id": str(headers.get("id")), "messaging.system": "celery"}
            pending = _publishing.get()
            if pending is not None:
                pending.finish()  # a publish that failed before after_task_publish
            _publishing.set(span)
        if any(name in headers for name in TRACE_HEADERS):
            return  # the app (or sentry-sdk) set its own
        headers.update(
            outgoing_headers(
                span if span is not None else parent,
                _scope.trace_id(),
                w3c=False,
                decided=_scope.isolation_holder().sampling_decided,
            )
        )

    def _on_published(self, **_: Any) -> None:
        span = _publishing.get()
        if span is not None:
            span.finish()
            _publishing.set(None)

    # -- worker ----------------------------------------------------------------------------

    def _wrap_build_tracer(self, original: Callable[..., Any]) -> Callable[..., Any]:
        integration = self

        def build_tracer(name: Any, task: Any, *args: Any, **kwargs: Any) -> Any:
            tracer = original(name, task, *args, **kwargs)
            if getattr(tracer, "_tripwire", False):
                return tracer
            return _traced(integration, str(getattr(task, "name", None) or name), tracer)

        return build_tracer

    def _enter(self, client: Any, run: TaskRun) -> bool:
        """What a TaskRun (installed as the isolation scope) needs beyond the common case: its
        session, the enqueuing code's trace id, its transaction if sampled, a beat check-in. True
        when its end needs :meth:`_exit`."""
        sessions = client.sessions
        if sessions is not None and sessions.auto:
            run.session = run
            run.started_at = time.time()
        fields = run.request
        carried = fields.get(HEADER)
        if type(carried) is dict:
            trace_id = carried.get("trace_id")
            if type(trace_id) is str and len(trace_id) == 32:
                run.trace_id = trace_id
        if client.tracing and active_span() is None:  # an eager task runs in its caller's span
            _start_transaction(client, run, fields)
        if type(carried) is dict:
            monitor = carried.get("monitor")
            if type(monitor) is dict and isinstance(monitor.get("slug"), str):
                slug = monitor["slug"]
                config = monitor.get("config")
                config = dict(config) if isinstance(config, dict) else None
                started = time.monotonic()
                checkin = _capture_checkin()(slug, "in_progress", monitor_config=config)
                run.monitor = (slug, config, checkin, started)
        return run.session is not None or run.txn is not None or run.monitor is not None

    def _exit(self, client: Any, run: TaskRun, state: str) -> None:
        """The execution ended in ``state`` (Celery's: SUCCESS, FAILURE, RETRY, ...)."""
        if run.txn is not None:
            _finish_transaction(run, run.txn, state)
        sessions = client.sessions
        if run.session is run and sessions is not None:
            try:
                if run.outcome == EXITED:
                    sessions.start()
                    next(sessions.exited)  # the common case: one C call (see _sessions)
                else:
                    sessions.record(run.started_at, run.outcome)
            except Exception:
                logger.debug("tripwire: could not count a Celery task's session", exc_info=True)
        monitor = run.monitor
        if monitor is not None and state in ("SUCCESS", "FAILURE"):
            try:
                slug, config, checkin, started = monitor
                status = "ok" if state == "SUCCESS" else "error"
                _capture_checkin()(slug, status, checkin, time.monotonic() - started, config)
            except Exception:
                logger.debug("tripwire: could not send a beat task's check-in", exc_info=True)

    def _on_failure(self, sender: Any = None, exception: Any = None, **_: Any) -> None:
        client = _globals.client
        if client is None or not isinstance(exception, BaseException):
            return
        try:
            expected = tuple(getattr(sender, "throws", ()) or ())
            if expected and isinstance(exception, expected):
                return
            event_id = client.capture_exception(exception, mechanism={"type": "celery", "handled": False})
            if event_id is not None:
                _scope.isolation_holder().last_event_id = event_id
        except Exception:
            logger.exception("tripwire: could not report a Celery task failure")

    def _on_retry(self, sender: Any = None, reason: Any = None, **_: Any) -> None:
        client = _globals.client
        if client is None or not self.report_retries:
            return
        error = getattr(reason, "exc", None)
        if not isinstance(error, BaseException):
            return
        try:
            client.capture_exception(
                error,
                mechanism={"type": "celery", "handled": True},
                level="warning",
                tags={"celery.retry": "true"},
            )
        except Exception:
            logger.exception("tripwire: could not report a Celery task retry")


def _traced(integration: CeleryIntegration, name: str, tracer: Callable[..., Any]) -> Callable[..., Any]:
    """Celery's ``tracer`` for one task, each execution run in its own :class:`TaskRun`."""

    isolation = _scope._isolation
    new_run = TaskRun

    def trace_task(uuid: Any, args: Any, kwargs: Any, request: Any = None) -> Any:
        # Runs for every task, so the common case is inline, in as few bytecodes as possible:
        # attribute stores and dict reads, nothing copied (see TaskRun), no further Python call.
        client = _globals.client
        if client is None:
            return tracer(uuid, args, kwargs, request)
        try:
            fields = request if type(request) is dict else _NOTHING
            run = new_run()
            run.last_event_id = run.trace_id = run._data = run.monitor = run.txn = None
            run.name = name
            run.task_id = uuid
            run.args = args
            run.kwargs = kwargs
            run.request = fields
            run.outcome = EXITED
            run.session = None
            run._base = isolation.get().data
            run.token = isolation.set(run)
            more = False
            if client.tracing or fields.get(HEADER) is not None or client.sessions is not None:
                more = integration._enter(client, run)
        except Exception:
            logger.exception("tripwire: could not set up the scope of a Celery task")
            return tracer(uuid, args, kwargs, request)
        state = "FAILURE"  # unless the tracer returns: it raises only with propagate (eager apply)
        try:
            result = tracer(uuid, args, kwargs, request)
            info = result[1]  # trace_ok_t(retval, info, runtime, retstr): info is None on success
            state = "SUCCESS" if info is None else str(getattr(info, "state", "FAILURE"))
            return result
        finally:
            if more:
                integration._exit(client, run, state)
            try:
                isolation.reset(run.token)
            except ValueError:  # ended in another context than it started (should not happen)
                isolation.set(_scope._ROOT)

    trace_task._tripwire = True  # type: ignore[attr-defined]
    trace_task.__wrapped__ = tracer  # type: ignore[attr-defined]
    return trace_task


# -- tracing ---------------------------------------------------------------------------------

#: The ``queue.submit.celery`` span of the message being published (before → after_task_publish).
_publishing: ContextVar[Span | None] = ContextVar("tripwire.celery.publishing", default=None)


def incoming_trace(fields: Mapping[str, Any]) -> dict[str, str]:
    """The propagation headers a task message carried (top-level message headers)."""
    incoming: dict[str, str] = {}
    for name in TRACE_HEADERS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            incoming[name] = value
    return incoming


def _start_transaction(client: Any, run: TaskRun, fields: Mapping[str, Any]) -> None:
    """Sample this execution; if sampled, start its transaction and make it the active span."""
    try:
        incoming = incoming_trace(fields)
        parent, dsc, others = read_incoming(incoming) if incoming else (None, None, "")
        if parent is not None:
            run.trace_id = parent.trace_id
        context = {"celery_job": {"task": run.name, "args": run.args, "kwargs": run.kwargs}}
        sampled, rate, rand = sample(client, context, parent, dsc)
        if not sampled:
            next(client.sampled_out)
            return
        txn = new_transaction(
            client,
            name=run.name,
            op="queue.task.celery",
            source="task",
            parent=parent,
            incoming_dsc=dsc,
            baggage_others=others,
            sample_rate=rate,
            sample_rand=rand,
        )
        txn.data = {
            "messaging.system": "celery",
            "messaging.message.id": str(run.task_id),
            "messaging.message.retry.count": fields.get("retries") or 0,
        }
        delivery = fields.get("delivery_info")
        queue = delivery.get("routing_key") if type(delivery) is dict else None
        if queue is not None:
            txn.data["messaging.destination.name"] = str(queue)
        run.trace_id = txn.trace_id_
        run.span_token = activate(txn)
        run.txn = txn
    except Exception:
        logger.exception("tripwire: could not start a Celery task's transaction")


def _finish_transaction(run: TaskRun, txn: Transaction, state: str) -> None:
    try:
        token = run.span_token
        if token is not None:
            try:
                deactivate(token)
            except ValueError:  # reset from another context: nothing to undo here
                pass
        if txn.status is None:
            txn.status = "ok" if state == "SUCCESS" else "aborted" if state == "RETRY" else "internal_error"
        txn.finish()
    except Exception:
        logger.exception("tripwire: could not finish a Celery task's transaction")


# -- celery beat ---------------------------------------------------------------------------

#: The schedule entry beat is sending now: (monitor slug, monitor config).
_beat_entry: ContextVar[tuple[str, dict[str, Any] | None] | None] = ContextVar(
    "tripwire.celery.beat_entry", default=None
)


def _wrap_apply_entry(original: Any) -> Any:
    def apply_entry(scheduler: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        if _globals.client is None:
            return original(scheduler, entry, *args, **kwargs)
        try:
            slug = str(entry.name)
            config = beat_monitor_config(entry.schedule)
        except Exception:
            return original(scheduler, entry, *args, **kwargs)
        token = _beat_entry.set((slug, config))
        try:
            return original(scheduler, entry, *args, **kwargs)
        finally:
            _beat_entry.reset(token)

    return apply_entry
