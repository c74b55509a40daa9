"""Celery: a scope per task execution, task failures reported, the enqueuing scope carried along.

Installed by :func:`tripwire.init` (identifier ``celery``); it does nothing until the app imports
Celery, and imports nothing of Celery's itself before that. It connects to Celery's signals, in the
producer and in the worker (the pool children inherit the connections when they fork):

* ``before_task_publish`` (producer): the message gets a ``tripwire`` header with the enqueuing code's
  trace id, tags and user, so the request that called ``.delay()`` and the task that failed share
  ``contexts.trace.trace_id``. With ``monitor_beat_tasks=True``, a message sent by ``celery beat``
  also names its schedule entry, and the worker sends cron check-ins for it.
* ``task_prerun`` / ``task_postrun`` (worker): an isolation scope around each execution, with the task
  name as transaction, ``contexts.celery`` (task name, id, retries, queue) and the arguments in
  ``extra["celery-job"]`` (scrubbed and trimmed when the event is built, like every extra).
* ``task_failure``: the task's exception, reported (mechanism ``celery``, unhandled) before Celery
  logs it, so the logging integration does not report it a second time. The exception object is
  left untouched: the prefork pool pickles it to the parent process. Exceptions the task declares
  expected (``Task.throws``) are not reported, and neither are retries (only the final failure of
  a retried task is), unless ``report_retries=True``.
"""

from __future__ import annotations

import sys
import time
from contextvars import ContextVar, Token
from types import MappingProxyType, ModuleType
from typing import Any, ClassVar

from .. import _globals, _scope
from .._log import logger
from .._sessions import CRASHED, ERRORED, EXITED
from ._common import Integration, Patches

__all__ = ["CeleryIntegration"]

#: The message header that carries the enqueuing scope.
HEADER = "tripwire"
_NOTHING: dict[str, Any] = {}
#: Tags carried in a message at most (the header travels with every message).
MAX_TAGS = 50
_USER_KEYS = ("id", "email", "username", "ip_address", "segment")


def _crontab_string(schedule: Any) -> str | None:
    parts = [
        getattr(schedule, name, None)
        for name in (
            "_orig_minute", "_orig_hour", "_orig_day_of_month", "_orig_month_of_year", "_orig_day_of_week",
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


class _Run:
    """What the worker keeps for one task execution between prerun and postrun.

    It is also the execution's release-health session (``holder.session``): a task counts like a
    request in the client's per-minute aggregate — exited, errored (a handled error was reported)
    or crashed (the task failed).
    """

    __slots__ = ("checkin", "config", "holder", "outcome", "slug", "started", "started_at", "token")

    def __init__(self, holder: _scope.ScopeHolder, token: Token[_scope.ScopeHolder]) -> None:
        self.holder = holder
        self.token = token
        self.slug: str | None = None
        self.config: dict[str, Any] | None = None
        self.checkin: str | None = None
        self.started = 0.0
        self.started_at = 0.0
        self.outcome = EXITED

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
        #: task id -> the running execution's state (an eager task runs inside its caller's).
        self._runs: dict[Any, _Run] = {}

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
            (signals.task_prerun, self._on_prerun),
            (signals.task_postrun, self._on_postrun),
            (signals.task_failure, self._on_failure),
            (signals.task_retry, self._on_retry),
        ]
        for signal, receiver in connections:
            uid = f"tripwire-{id(self)}-{receiver.__name__}"
            signal.connect(receiver, weak=False, dispatch_uid=uid)
            self._signals.append((signal, uid))
        if self.monitor_beat_tasks:
            self._patches.when_imported("celery.beat", self._patch_beat)

    def _patch_beat(self, beat: ModuleType) -> None:
        self._patches.replace(beat.Scheduler, "apply_entry", _wrap_apply_entry)

    # -- producer --------------------------------------------------------------------------

    def _on_publish(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        try:
            if _globals.client is None or not isinstance(headers, dict) or HEADER in headers:
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
            entry = _beat_entry.get(None) if self.monitor_beat_tasks else None
            if entry is not None:
                carried["monitor"] = {"slug": entry[0], "config": entry[1]}
            if carried:
                headers[HEADER] = carried
        except Exception:
            logger.debug("tripwire: could not add the scope to a Celery message", exc_info=True)

    # -- worker ----------------------------------------------------------------------------

    def _on_prerun(
        self, task_id: Any = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
    ) -> None:
        # Runs before every task: plain dict and attribute reads only (no ABC isinstance, no
        # getattr that misses and raises inside), see bench/celery_bench.py.
        client = _globals.client
        if client is None or task is None:
            return
        try:
            request = task.request
            fields = getattr(request, "__dict__", None) or {}
            name = str(task.name)
            # What a fresh unit of work inherits (see ScopeData.for_new_unit_of_work), in the one
            # _replace below.
            data = _scope.snapshot()
            carried = fields.get(HEADER)
            if type(carried) is not dict:
                carried = _NOTHING
            else:
                tags = carried.get("tags")
                if type(tags) is dict and tags:
                    data = data.with_tags({str(k): str(v) for k, v in list(tags.items())[:MAX_TAGS]})
                user = carried.get("user")
                if type(user) is dict and user and data.user is None:
                    data = _scope.replace_field(data, user=dict(user))
            delivery = fields.get("delivery_info")
            celery_context = {
                "task_name": name,
                "task_id": str(task_id),
                "retries": fields.get("retries") or 0,
                "queue": delivery.get("routing_key") if type(delivery) is dict else None,
            }
            job = {"task_name": name, "args": list(args or ()), "kwargs": dict(kwargs or {})}
            data = data._replace(
                breadcrumbs=(),
                processors=(),
                transaction=name,
                contexts=MappingProxyType({**data.contexts, "celery": celery_context}),
                extras=MappingProxyType({**data.extras, "celery-job": job}),
            )
            holder = _scope.new_holder(data)
            trace_id = carried.get("trace_id")
            if type(trace_id) is str and len(trace_id) == 32:
                holder.trace_id = trace_id
            run = _Run(holder, _scope._isolation.set(holder))
            sessions = client.sessions
            if sessions is not None and sessions.auto:
                holder.session = run
                run.started_at = time.time()
            monitor = carried.get("monitor")
            if type(monitor) is dict and isinstance(monitor.get("slug"), str):
                run.slug = monitor["slug"]
                config = monitor.get("config")
                run.config = dict(config) if isinstance(config, dict) else None
                run.started = time.monotonic()
                run.checkin = _capture_checkin()(run.slug, "in_progress", monitor_config=run.config)
            # Task ids are unique, and a task's executions (retries) never overlap.
            self._runs[task_id] = run
        except Exception:
            logger.exception("tripwire: could not set up the scope of a Celery task")

    def _on_postrun(self, task_id: Any = None, state: Any = None, **_: Any) -> None:
        run = self._runs.pop(task_id, None)
        if run is None:
            return
        client = _globals.client
        sessions = client.sessions if client is not None else None
        if run.holder.session is run and sessions is not None:
            try:
                if run.outcome == EXITED:
                    sessions.start()
                    next(sessions.exited)  # the common case: one C call (see _sessions)
                else:
                    sessions.record(run.started_at, run.outcome)
            except Exception:
                logger.debug("tripwire: could not count a Celery task's session", exc_info=True)
        try:
            if run.slug is not None and state in ("SUCCESS", "FAILURE"):
                status = "ok" if state == "SUCCESS" else "error"
                duration = time.monotonic() - run.started
                _capture_checkin()(run.slug, status, run.checkin, duration, run.config)
        except Exception:
            logger.debug("tripwire: could not send a beat task's check-in", exc_info=True)
        try:
            _scope._isolation.reset(run.token)
        except ValueError:  # ended in another context than it started (should not happen)
            _scope._isolation.set(_scope._ROOT)

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
