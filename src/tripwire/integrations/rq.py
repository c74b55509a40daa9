"""RQ: a scope per job, job failures reported with the job's id, function, arguments and queue.

Installed by :func:`tripwire.init` (identifier ``rq``); it waits for the app to import ``rq.worker``
and then wraps two methods of RQ's ``BaseWorker`` (``Worker``, ``SimpleWorker`` and the others
inherit them):

* ``perform_job``: the job runs in an isolation scope with the function name as transaction,
  ``contexts.rq`` (job id, function, queue, retries left) and the arguments in ``extra["rq-job"]``
  (scrubbed and trimmed when the event is built). The forking ``Worker`` runs each job in a work
  horse that ends with ``os._exit()``, which skips every exit hook: the horse delivers what the job
  captured before it ends (bounded by ``shutdown_timeout``).
* ``handle_exception``: the job's exception, reported (mechanism ``rq``, unhandled); the record RQ
  then logs about it (the traceback as text) is marked so that the logging integration does not
  report it again. A job that RQ will retry (``Retry``) is
  reported only on its final failure, unless ``RqIntegration(report_retries=True)``.

With tracing on, ``Queue.enqueue_job`` (producer) adds the trace to the job's ``meta`` (the
``sentry-trace`` and ``baggage`` values) and, inside a sampled transaction, a ``queue.submit.rq``
span; the worker continues that trace: each sampled job is a transaction (op ``queue.task.rq``,
named after the function, status ``ok`` or ``internal_error``).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from .. import _globals, _scope
from .._log import logger
from .._tracing import (
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

#: The key of a job's ``meta`` that carries the enqueuing code's trace (``sentry-trace``, ``baggage``).
META_KEY = "_tripwire_trace"

__all__ = ["RqIntegration"]


def _job_data(job: Any, queue: Any) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(function name, contexts.rq, extra["rq-job"]) of ``job``; what cannot be read is left out."""
    context: dict[str, Any] = {"job_id": str(getattr(job, "id", ""))}
    extra: dict[str, Any] = {}
    func_name: str | None = None
    try:
        func_name = str(job.func_name)
        context["func"] = func_name
        extra = {"func": func_name, "args": list(job.args or ()), "kwargs": dict(job.kwargs or {})}
    except Exception:  # a job whose payload cannot be deserialized: RQ reports that failure itself
        pass
    origin = getattr(queue, "name", None) or getattr(job, "origin", None)
    if origin is not None:
        context["queue"] = str(origin)
    retries_left = getattr(job, "retries_left", None)
    if isinstance(retries_left, int):
        context["retries_left"] = retries_left
    return func_name, context, extra


def _wrap_perform_job(original: Callable[..., Any]) -> Callable[..., Any]:
    def perform_job(worker: Any, job: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        client = _globals.client
        if client is None:
            return original(worker, job, queue, *args, **kwargs)
        try:
            func_name, context, extra = _job_data(job, queue)
            data = _scope.snapshot().for_new_unit_of_work().with_context("rq", context)
            if extra:
                data = data.with_extra("rq-job", extra)
            holder = _scope.new_holder(data._replace(transaction=func_name))
        except Exception:
            logger.exception("tripwire: could not set up the scope of an RQ job")
            return original(worker, job, queue, *args, **kwargs)
        token = _scope._isolation.set(holder)
        txn = _start_transaction(client, holder, job, func_name) if client.tracing else None
        ok = False
        try:
            ok = original(worker, job, queue, *args, **kwargs) is not False
            return ok
        finally:
            if txn is not None:
                _finish_transaction(txn, ok)
            _scope._isolation.reset(token)
            if getattr(worker, "is_horse", False):
                # The horse ends with os._exit() right after this returns: deliver now.
                try:
                    client.flush(client.options.shutdown_timeout)
                except Exception:
                    logger.debug("tripwire: flushing in an RQ work horse failed", exc_info=True)

    return perform_job


def _start_transaction(
    client: Any, holder: _scope.ScopeHolder, job: Any, func_name: str | None
) -> tuple[Transaction, Any] | None:
    """Sample this job; if sampled, its transaction (made the active span) and the span's token."""
    try:
        meta = getattr(job, "meta", None)
        carried = meta.get(META_KEY) if isinstance(meta, dict) else None
        incoming = {str(k): str(v) for k, v in carried.items()} if isinstance(carried, dict) else {}
        parent, dsc, others = read_incoming(incoming) if incoming else (None, None, "")
        if parent is not None:
            holder.trace_id = parent.trace_id
        sampled, rate, rand = sample(client, {"rq_job": job}, parent, dsc)
        if not sampled:
            next(client.sampled_out)
            return None
        txn = new_transaction(
            client,
            name=func_name or "<unknown job>",
            op="queue.task.rq",
            source="task",
            parent=parent,
            incoming_dsc=dsc,
            baggage_others=others,
            sample_rate=rate,
            sample_rand=rand,
        )
        txn.data = {"messaging.system": "rq", "messaging.message.id": str(getattr(job, "id", ""))}
        origin = getattr(job, "origin", None)
        if origin:
            txn.data["messaging.destination.name"] = str(origin)
        holder.trace_id = txn.trace_id_
        return txn, activate(txn)
    except Exception:
        logger.exception("tripwire: could not start an RQ job's transaction")
        return None


def _finish_transaction(started: tuple[Transaction, Any], ok: bool) -> None:
    txn, token = started
    try:
        try:
            deactivate(token)
        except ValueError:  # reset from another context: nothing to undo here
            pass
        if txn.status is None:
            txn.status = "ok" if ok else "internal_error"
        txn.finish()
    except Exception:
        logger.exception("tripwire: could not finish an RQ job's transaction")


def _wrap_enqueue_job(original: Callable[..., Any]) -> Callable[..., Any]:
    def enqueue_job(queue: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
        client = _globals.client
        if client is None or not client.tracing:
            return original(queue, job, *args, **kwargs)
        span = None
        try:
            parent = active_span()
            span = child_span(parent, "queue.submit.rq", None) if parent is not None else None
            if span is not None:
                span.description = str(getattr(job, "func_name", "") or "") or None
                span.data = {
                    "messaging.system": "rq",
                    "messaging.message.id": str(getattr(job, "id", "")),
                    "messaging.destination.name": str(getattr(queue, "name", "")),
                }
            headers = outgoing_headers(
                span if span is not None else parent,
                _scope.trace_id(),
                w3c=False,
                decided=_scope.isolation_holder().sampling_decided,
            )
            meta = job.meta if isinstance(getattr(job, "meta", None), dict) else None
            if meta is not None and META_KEY not in meta:
                meta[META_KEY] = headers
        except Exception:
            logger.debug("tripwire: could not add the trace to an RQ job", exc_info=True)
        try:
            return original(queue, job, *args, **kwargs)
        except BaseException:
            if span is not None:
                span.status = "internal_error"
            raise
        finally:
            if span is not None:
                span.finish()

    return enqueue_job


class _ReportedHere:
    """A logging filter for the worker's logger while RQ logs a failure tripwire just reported.

    RQ logs the failure at ERROR with the traceback as text (no ``exc_info``), which the logging
    integration would turn into a second event. The filter marks that record only (this thread,
    while ``handle_exception`` runs) as already handled; it still reaches the app's handlers.
    """

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread:
            record.tripwire_ignore = True
        return True


def _wrap_handle_exception(original: Callable[..., Any], report_retries: bool) -> Callable[..., Any]:
    def handle_exception(worker: Any, job: Any, *exc_info: Any, **kwargs: Any) -> Any:
        client = _globals.client
        error = exc_info[1] if len(exc_info) > 1 else None
        if client is None or not isinstance(error, BaseException):
            return original(worker, job, *exc_info, **kwargs)
        try:
            retries_left = getattr(job, "retries_left", None)
            retrying = isinstance(retries_left, int) and retries_left > 0
            if not retrying:
                client.capture_exception(error, mechanism={"type": "rq", "handled": False})
            elif report_retries:
                client.capture_exception(
                    error,
                    mechanism={"type": "rq", "handled": True},
                    level="warning",
                    tags={"rq.retry": "true"},
                )
        except Exception:
            logger.exception("tripwire: could not report an RQ job failure")
        log = getattr(worker, "log", None)
        if not isinstance(log, logging.Logger):
            return original(worker, job, *exc_info, **kwargs)
        reported_here = _ReportedHere()
        log.addFilter(reported_here)
        try:
            return original(worker, job, *exc_info, **kwargs)
        finally:
            log.removeFilter(reported_here)

    return handle_exception


class RqIntegration(Integration):
    """Report RQ job failures with the job's context; see the module docstring.

    ``report_retries``: also report the error of a job that RQ will retry (level ``warning``).
    """

    identifier: ClassVar[str] = "rq"

    def __init__(self, *, report_retries: bool = False) -> None:
        self.report_retries = report_retries
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("rq.worker", self._setup)

    def uninstall(self) -> None:
        self._patches.undo()

    def _setup(self, module: ModuleType) -> None:
        worker_class = getattr(module, "BaseWorker", None) or module.Worker
        report_retries = self.report_retries
        self._patches.replace(worker_class, "perform_job", _wrap_perform_job)
        self._patches.replace(
            worker_class,
            "handle_exception",
            lambda original: _wrap_handle_exception(original, report_retries),
        )
        queue_module = sys.modules.get("rq.queue")
        queue_class = getattr(queue_module, "Queue", None)
        if isinstance(queue_class, type):
            self._patches.replace(queue_class, "enqueue_job", _wrap_enqueue_job)
