"""The Client: the capture pipeline from a call on the user's thread to the reporters.

On the caller (cheap, never raises): resolve the exception → dedupe → ignore_errors → sample →
snapshot (exception + a reference to the immutable scope data) → non-blocking enqueue.
On the worker: build the event (frames, source, locals, scrubbing, size budget) → before_send →
every reporter, each isolated from the others' failures.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from . import _deferred, _scope
from ._capture import CaptureItem
from ._capture_args import ALIASES, translate_aliases, with_session
from ._crumb_types import bugsnag_type
from ._dedupe import ReportedRegistry
from ._log import logger
from ._options import Options
from ._repeats import ErrorKey, RepeatLimiter, exception_key, message_key
from ._scrub import Scrubber, build_scrubber
from ._serialize import safe_repr
from ._sessions import SessionAggregator
from ._stacktrace import snapshot_live_locals
from ._stats import DropCounter
from ._tracing import Span, Transaction, active_span
from ._types import Breadcrumb, CheckIn, Event, Feedback, Hint, Mechanism, ProfileChunk, SessionBatch
from .delivery.outbox import Outbox
from .delivery.worker import Worker
from .reporters import create_reporter
from .reporters.base import Reporter
from .reporters.sentry import SentryReporter

SCOPE_KWARGS = frozenset({"tags", "extras", "contexts", "user", "level", "fingerprint"})


def _event_builder() -> ModuleType:
    # Imported by the worker with the first event, never at init (see _deferred): the event
    # builder, its serializer and its size budget cost several ms to import.
    from . import _event_builder

    return _event_builder


def _transaction_builder() -> ModuleType:
    from . import _transaction_builder

    return _transaction_builder


def _profile_builder() -> ModuleType:
    # On the worker, with the first profile: never loaded when profiling is not configured.
    from . import _profile_builder

    return _profile_builder


def _new_event_id() -> str:
    return os.urandom(16).hex()


#: How long the worker, woken by a transaction or session batch, waits for more before it starts (s).
WORKER_LINGER = 0.05


class Client:
    """Holds the options, the reporters and the worker. Create it with :func:`tripwire.init`."""

    def __init__(self, options: Options, reporters: list[Reporter] | None = None) -> None:
        self.options = options
        self.stats = DropCounter(debug=options.debug)
        self.reported = ReportedRegistry()
        if reporters is None:
            reporters = self._reporters_from_options(options)
        self.reporters: tuple[Reporter, ...] = tuple(reporters)
        for reporter in self.reporters:
            reporter.configure(options)
            reporter.bind(self.stats)
        self._error_crumbs = any(r.error_breadcrumbs for r in self.reporters)
        self._link_sessions = any(r.links_sessions for r in self.reporters)
        self._ignore_types = tuple(e for e in options.ignore_errors if isinstance(e, type))
        self._ignore_names = frozenset(e for e in options.ignore_errors if isinstance(e, str))
        self._worker = Worker(
            self._process,
            Outbox(options.max_queue_size),
            name="tripwire-worker",
            on_drop=self._count_dropped_job,
            yield_between_jobs=True,
            # Transactions (low priority) arriving one per request are built in batches: one thread
            # switch per batch instead of per request (bench/tracing_bench.py, loop CPU). Errors
            # are not held back by it.
            linger=WORKER_LINGER,
        )
        self._closed = False
        #: Tracing (see _tracing): whether transactions may be sampled, and which outgoing URLs get
        #: propagation headers (None: all).
        self.tracing = options.tracing
        self.trace_targets = options.trace_propagation_targets
        #: Every outgoing URL gets propagation headers and only sentry-trace is sent (the defaults):
        #: an unsampled unit of work's outgoing request then takes the short path (integrations.stdlib).
        self.propagate_plain = self.trace_targets is None and not options.propagate_traceparent
        #: ``next(client.sampled_out)`` counts a unit of work tracing did not sample (no lock).
        self.sampled_out = self.stats.fast_counter("sample_rate", "transaction")
        self._scrubber: Scrubber | None = None
        #: Error-storm protection (see _repeats); None when ``repeat_limit`` is off.
        self.repeats: RepeatLimiter | None = None
        if options.repeat_limit:
            self.repeats = RepeatLimiter(
                options.repeat_limit,
                emit=self._send_coalesced,
                discard=lambda n: self.stats.record("repeat_limit", quantity=n),
            )
        #: Release health (per-minute request counts); None without a release: then no session work.
        self.sessions: SessionAggregator | None = None
        # Without a release of the app's, a backend's own (BugSnag's app_version) names it.
        own = (r.default_release for r in self.reporters if r.default_release)
        release = options.release or next(own, None)
        if release:
            self.sessions = SessionAggregator(
                self.submit_sessions,
                release=release,
                environment=options.environment,
                auto=options.auto_session_tracking,
                on_drop=lambda n: self.stats.record("queue_full", "session", n),
            )
        #: The sampling profiler (docs/profiling.md); None, and its modules never imported, unless a
        #: profiling option is set.
        self.profiler: Any = None
        self._profile_builder: Any = None
        if options.profiling and self.reporters:
            from ._profiling import Profiler

            self.profiler = Profiler(options, self.stats, self.submit_profile_chunk)

    @property
    def scrubber(self) -> Scrubber:
        """This client's scrubbing rules (built on first use: compiling them costs about 1 ms)."""
        scrubber = self._scrubber
        if scrubber is None:
            scrubber = self._scrubber = build_scrubber(self.options)
        return scrubber

    @staticmethod
    def _reporters_from_options(options: Options) -> list[Reporter]:
        defaults = dict(options.reporter_defaults)
        reporters = [
            create_reporter({**defaults, **spec} if defaults and isinstance(spec, Mapping) else spec)
            for spec in options.reporters
        ]
        if options.dsn is not None:
            reporters.insert(0, SentryReporter(dsn=str(options.dsn), options=options))
        return reporters

    # -- the caller's side ------------------------------------------------------------------

    def _is_ignored(self, exc: BaseException) -> bool:
        if self._ignore_types and isinstance(exc, self._ignore_types):
            return True
        if self._ignore_names:
            for cls in type(exc).__mro__:
                if cls.__name__ in self._ignore_names:
                    return True
                if f"{cls.__module__}.{cls.__qualname__}" in self._ignore_names:
                    return True
        return False

    def capture_exception(
        self,
        error: BaseException | None = None,
        *,
        mechanism: Mechanism | None = None,
        hint: Hint | None = None,
        event: Event | None = None,
        **scope_kwargs: Any,
    ) -> str | None:
        """Report ``error`` (default: the exception being handled); the event id, or None if dropped."""
        try:
            message = None
            if scope_kwargs:
                message = scope_kwargs.pop("message", None)
                if ALIASES.intersection(scope_kwargs):
                    event = translate_aliases(scope_kwargs, event)
            exc: object = error if error is not None else sys.exc_info()[1]
            if isinstance(exc, tuple) and len(exc) == 3:
                exc = exc[1]  # an exc_info tuple, as sentry_sdk.capture_exception accepts
            if exc is None:
                return None
            if not isinstance(exc, BaseException):
                logger.warning("tripwire: capture_exception needs an exception, got %s", type(exc).__name__)
                return None
            if self.reported.seen(exc):
                self.stats.record("deduplicated")
                return None
            if self._is_ignored(exc):
                self.stats.record("ignored")
                return None
            if self.options.sample_rate < 1.0 and _deferred.random() >= self.options.sample_rate:
                self.stats.record("sample_rate")
                return None
            self.reported.mark(exc)
            # Release health counts every occurrence, also those the repeat limit coalesces.
            session = self._mark_session(mechanism)
            if session is not None and self._link_sessions:
                event = with_session(event, session)
            repeats = 0
            key = None
            if self.repeats is not None:
                key = exception_key(exc, self._fingerprint(scope_kwargs))
                repeats = self._admit(key)
            if not isinstance(message, str | None):
                message = safe_repr(message, 8192)
            if repeats < 0:
                # Kept as a plain tuple (a CaptureItem costs ~3 µs more): the error's final event,
                # if it is the last occurrence when the count is sent (see _send_coalesced).
                self._keep_coalesced(
                    key,
                    (
                        time.time(),
                        "error",
                        _scope.snapshot(),
                        exc,
                        mechanism,
                        message,
                        event or {},
                        scope_kwargs,
                        hint or {},
                        threading.get_ident(),
                        _scope.trace_id(),
                    ),
                )
                return None
            trace_id, span_id = _trace_context()
            item = CaptureItem(
                event_id=_new_event_id(),
                timestamp=time.time(),
                level="error",
                scope=_scope.snapshot(),
                exc=exc,
                mechanism=mechanism,
                # What was happening (asphalt's ``report_exception(ctx, message, exc)``): the logentry.
                message=message,
                event=event or {},
                overrides=_overrides(scope_kwargs),
                hint=hint or {},
                thread_id=threading.get_ident(),
                live_locals=self._live_locals(exc),
                trace_id=trace_id,
                span_id=span_id,
                repeats=repeats,
            )
            event_id = self._enqueue(item)
            if event_id is not None and self._error_crumbs:
                self._error_breadcrumb(exc, item)
            return event_id
        except Exception:
            logger.exception("tripwire: capture_exception failed; nothing was reported")
            return None

    def capture_message(
        self,
        message: str,
        level: str = "info",
        *,
        hint: Hint | None = None,
        event: Event | None = None,
        **scope_kwargs: Any,
    ) -> str | None:
        """Report a message; the event id, or None if dropped."""
        try:
            if scope_kwargs and ALIASES.intersection(scope_kwargs):
                event = translate_aliases(scope_kwargs, event)
            if self.options.sample_rate < 1.0 and _deferred.random() >= self.options.sample_rate:
                self.stats.record("sample_rate")
                return None
            if level in ("error", "fatal"):
                session = self._mark_session({"handled": True})
                if session is not None and self._link_sessions:
                    event = with_session(event, session)
            repeats = 0
            key = None
            if self.repeats is not None:
                key = _message_key(message, level, event, self._fingerprint(scope_kwargs))
                repeats = self._admit(key)
            text = message if isinstance(message, str) else safe_repr(message, 8192)
            if repeats < 0:
                self._keep_coalesced(
                    key,
                    (
                        time.time(),
                        level,
                        _scope.snapshot(),
                        None,
                        None,
                        text,
                        event or {},
                        scope_kwargs,
                        hint or {},
                        threading.get_ident(),
                        _scope.trace_id(),
                    ),
                )
                return None
            trace_id, span_id = _trace_context()
            item = CaptureItem(
                event_id=_new_event_id(),
                timestamp=time.time(),
                level=level,
                scope=_scope.snapshot(),
                message=text,
                event=event or {},
                overrides=_overrides(scope_kwargs),
                hint=hint or {},
                thread_id=threading.get_ident(),
                trace_id=trace_id,
                span_id=span_id,
                repeats=repeats,
            )
            return self._enqueue(item)
        except Exception:
            logger.exception("tripwire: capture_message failed; nothing was reported")
            return None

    def add_breadcrumb(self, crumb: Breadcrumb, hint: Hint | None = None) -> None:
        """Add a finished breadcrumb to the current scope, through ``before_breadcrumb``."""
        max_breadcrumbs = self.options.max_breadcrumbs
        if max_breadcrumbs == 0:
            return
        hook = self.options.before_breadcrumb
        if hook is not None:
            try:
                result = hook(crumb, hint or {})
            except Exception:
                logger.exception("tripwire: before_breadcrumb raised; the breadcrumb is kept")
                result = crumb
            if result is None:
                return
            crumb = result
        enabled = self.options.enabled_breadcrumb_types
        if enabled is not None and bugsnag_type(crumb) not in enabled:
            return
        holder = _scope._isolation.get()  # current_holder(), inline: once per log record
        holder.data = holder.data.with_breadcrumb(crumb, max_breadcrumbs)

    def _admit(self, key: ErrorKey | None) -> int:
        """Earlier occurrences this one stands for; -1 when over the repeat limit (the limiter
        counts it as ``repeat_limit`` unless it is kept as its error's final event)."""
        assert self.repeats is not None
        admitted = self.repeats.admit(key)
        return -1 if admitted is None else admitted

    def _error_breadcrumb(self, exc: BaseException, item: CaptureItem) -> None:
        """BugSnag's automatic "error report" breadcrumb, left on the scope after the error."""
        level = str(item.overrides.get("level") or item.scope.level or item.level)
        handled = True if item.mechanism is None else bool(item.mechanism.get("handled", True))
        crumb: Breadcrumb = {
            "timestamp": item.timestamp,
            "type": "error",
            "category": "error",
            "level": level,
            "message": type(exc).__name__,
            "data": {
                "errorClass": type(exc).__qualname__,
                "message": _safe_text(exc),
                "unhandled": not handled,
                "severity": level,
            },
        }
        self.add_breadcrumb(crumb)

    def _keep_coalesced(self, key: ErrorKey | None, occurrence: tuple[Any, ...]) -> None:
        assert self.repeats is not None
        self.repeats.keep(key, occurrence)

    def _send_coalesced(self, pending: list[tuple[Any, int]]) -> None:
        """Queue the final event of each error with coalesced occurrences, carrying their count."""
        for occurrence, others in pending:
            ts, level, scope, exc, mechanism, message, event, scope_kwargs, hint, thread, trace = occurrence
            item = CaptureItem(
                _new_event_id(),
                ts,
                level,
                scope,
                exc,
                mechanism,
                message,
                event,
                _overrides(scope_kwargs),
                hint,
                thread,
                None,
                trace,
                # Its ``others`` are already counted as repeat_limit; a full queue counts it (queue_full).
                others,
            )
            self._enqueue(item)

    def _send_all_coalesced(self) -> None:
        if self.repeats is not None:
            self._send_coalesced(self.repeats.take_pending())

    @staticmethod
    def _fingerprint(scope_kwargs: Mapping[str, Any]) -> Any:
        # A custom fingerprint splits one stack into several issues: it must split the budget too.
        fingerprint = scope_kwargs.get("fingerprint")
        if fingerprint is None:
            fingerprint = _scope.snapshot().fingerprint
        # Only plain values: anything else (an object with a hostile __eq__ or __bool__) must not
        # be able to break the capture, so it simply does not split the budget.
        if isinstance(fingerprint, list | tuple):
            return tuple(p for p in fingerprint if isinstance(p, str))
        return fingerprint if isinstance(fingerprint, str) else None

    def _live_locals(self, exc: BaseException) -> dict[Any, dict[str, Any]] | None:
        # The frames still running keep changing after we return: copy their locals now (cheap).
        if not self.options.include_local_variables:
            return None
        try:
            return snapshot_live_locals(exc)
        except Exception:
            logger.debug("tripwire: could not snapshot live locals", exc_info=True)
            return None

    def _mark_session(self, mechanism: Mechanism | None) -> Any:
        session = _scope.isolation_holder().session
        if session is not None:
            handled = True if mechanism is None else bool(mechanism.get("handled", True))
            session.mark_error(handled=handled)
        return session

    def _enqueue(self, item: CaptureItem) -> str | None:
        if self._closed:
            self.stats.record("queue_full")
            return None
        if not self._worker.submit(item):
            self.stats.record("queue_full")  # logged by the counter when debug=True
            return None
        return item.event_id

    def _count_dropped_job(self, job: Any) -> None:
        """A queued job pushed out by an error, or left when close() ran out of time."""
        if isinstance(job, SessionBatch):
            self.stats.record("queue_full", "session", len(job.aggregates) + len(job.updates))
        elif isinstance(job, CheckIn):
            self.stats.record("queue_full", "feedback" if isinstance(job, Feedback) else "monitor")
        elif isinstance(job, Transaction):
            self._count_lost_transaction(job, "queue_full")
        elif isinstance(job, Span):
            self.stats.record("queue_full", "span")
        elif isinstance(job, ProfileChunk):
            self.stats.record("queue_full", "profile_chunk")
        else:
            self.stats.record("queue_full")

    # -- the worker's side ------------------------------------------------------------------

    def _process(self, job: Any) -> None:
        if isinstance(job, CaptureItem):
            self._process_capture(job)
        elif isinstance(job, SessionBatch):
            self._fan_out("send_sessions", job)
        elif isinstance(job, Feedback):
            self._fan_out("send_feedback", job.payload)
        elif isinstance(job, CheckIn):
            self._fan_out("send_checkin", job.payload)
        elif isinstance(job, Transaction):
            self._process_transaction(job)
        elif isinstance(job, Span):  # a late span (after Transaction: a Transaction is a Span)
            self._process_late_span(job)
        elif isinstance(job, ProfileChunk):
            self._process_chunk(job)

    def _process_late_span(self, span: Span) -> None:
        try:
            item = _transaction_builder().build_span_item(span, self.options, self.scrubber)
        except Exception:
            logger.exception("tripwire: could not build a late span")
            self.stats.record("internal_error", "span")
            return
        for reporter in self.reporters:
            try:
                reporter.send_spans([item])
            except Exception:
                logger.exception("tripwire: reporter %s failed in send_spans", reporter.name)
                self.stats.record("internal_error", "span", reporter=reporter.name)

    def _profiles(self) -> Any:
        builder = self._profile_builder
        if builder is None:
            builder = self._profile_builder = _profile_builder().ProfileBuilder(self.options)
        return builder

    def _process_transaction(self, txn: Transaction) -> None:
        try:
            event = _transaction_builder().build_transaction(txn, self.options, self.scrubber)
            trace = txn.dynamic_sampling_context()
        except Exception:
            logger.exception("tripwire: could not build a transaction")
            self._count_lost_transaction(txn, "internal_error")
            return
        profile = None
        handle = txn.profile
        if handle is not None and handle.recording is not None:
            profile = self._build_profile(handle.recording, event)
        for reporter in self.reporters:
            try:
                if profile is not None and reporter.accepts_profiles:
                    reporter.send_transaction(event, trace, profile=profile)
                else:
                    reporter.send_transaction(event, trace)
            except Exception:
                logger.exception("tripwire: reporter %s failed in send_transaction", reporter.name)
                self.stats.record("internal_error", "transaction", reporter=reporter.name)

    def _build_profile(self, recording: Any, event: Event) -> dict[str, Any] | None:
        try:
            profile: dict[str, Any] | None = self._profiles().transaction_profile(recording, event)
        except Exception:
            logger.exception("tripwire: could not build a profile; the transaction goes without")
            self.stats.record("internal_error", "profile")
            return None
        if recording.dropped:
            # Full before it ended (a profiler_frequency far above 100 Hz): sent cut, and counted.
            self.stats.record("max_samples", "profile")
        if profile is None:
            self.stats.record("insufficient_data", "profile")
        return profile

    def _process_chunk(self, chunk: ProfileChunk) -> None:
        try:
            payload = self._profiles().chunk(chunk)
        except Exception:
            logger.exception("tripwire: could not build a profile chunk")
            self.stats.record("internal_error", "profile_chunk")
            return
        if payload is None:
            self.stats.record("insufficient_data", "profile_chunk")
            return
        for reporter in self.reporters:
            try:
                reporter.send_profile_chunk(payload)
            except Exception:
                logger.exception("tripwire: reporter %s failed in send_profile_chunk", reporter.name)
                self.stats.record("internal_error", "profile_chunk", reporter=reporter.name)

    def _process_capture(self, item: CaptureItem) -> None:
        try:
            event = _event_builder().build_event(item, self.options, self.scrubber)
        except Exception:
            logger.exception("tripwire: could not build event %s", item.event_id)
            self.stats.record("internal_error")
            return
        if event is None:
            self.stats.record("before_send")
            return
        before_send = self.options.before_send
        if before_send is not None:
            hint = item.hint
            if item.exc is not None:
                hint = {**hint, "exc_info": (type(item.exc), item.exc, item.exc.__traceback__)}
            # The hook gets a copy, so one that changes the event and then raises leaves it unchanged.
            original = event
            try:
                result: Any = before_send(_deferred.json_copy(event), hint)
            except Exception:
                logger.exception("tripwire: before_send raised; the event is sent unchanged")
                result = original
            if result is None:
                self.stats.record("before_send")
                return
            if not isinstance(result, dict):
                logger.warning(
                    "tripwire: before_send returned %s, not an event; the event is sent unchanged",
                    type(result).__name__,
                )
                result = original
            # Whatever the hook added must still be JSON and within the size budget.
            options = self.options
            event = _event_builder().enforce_budget(result, options.max_event_bytes, options.max_value_length)
        self._fan_out("send_event", event)

    def _fan_out(self, method: str, payload: Any) -> None:
        for reporter in self.reporters:
            try:
                getattr(reporter, method)(payload)
            except Exception:
                logger.exception("tripwire: reporter %s failed in %s", reporter.name, method)
                self.stats.record("internal_error", reporter=reporter.name)

    def submit_sessions(self, batch: SessionBatch) -> bool:
        """Queue release-health data for the reporters (used by the session aggregator)."""
        # Low priority: when the queue is full, errors push session batches out, never the reverse.
        if self._worker.submit(batch, low_priority=True):
            return True
        self.stats.record("queue_full", "session", len(batch.aggregates) + len(batch.updates))
        return False

    def submit_transaction(self, txn: Transaction) -> bool:
        """Queue a finished transaction for the worker; False (and counted) when there is no room.

        Low priority: errors push transactions out of a full queue, never the reverse.
        """
        txn.sent = True
        if txn.profile is not None:
            self.profiler.transaction_finished(txn.profile)
        spans = txn.spans
        for span in spans:
            if span.end is None:
                # Still running when the transaction ended (a task that outlives the request): left
                # out of it, and sent on its own as a span item when it finishes (Span.finish). The
                # ids it will name are made here, on the caller, never concurrently with the worker.
                txn.spans = [s for s in spans if s.end is not None]
                txn.span_id  # noqa: B018
                for late in spans:
                    if late.end is None:
                        late.span_id  # noqa: B018
                        if late.parent is not None:
                            late.parent.span_id  # noqa: B018
                break
        if self._closed or not self._worker.submit(txn, low_priority=True):
            self._count_lost_transaction(txn, "queue_full")
            return False
        return True

    def submit_late_span(self, span: Span) -> bool:
        """Queue a span that finished after its transaction was sent; False (and counted) if no room."""
        if self._closed or not self._worker.submit(span, low_priority=True):
            self.stats.record("queue_full", "span")
            return False
        return True

    def _count_lost_transaction(self, txn: Transaction, reason: str) -> None:
        self.stats.record(reason, "transaction")
        self.stats.record(reason, "span", len(txn.spans) + 1)
        if txn.profile is not None and txn.profile.recording is not None:
            self.stats.record(reason, "profile")

    def submit_profile_chunk(self, chunk: ProfileChunk) -> bool:
        """Queue a continuous-profiling chunk (from the profiler's thread); False (counted) if no room."""
        if self._closed or not self._worker.submit(chunk, low_priority=True):
            self.stats.record("queue_full", "profile_chunk")
            return False
        return True

    def submit_feedback(self, feedback: dict[str, Any]) -> bool:
        """Queue user feedback for the reporters; False (and counted) when there is no room."""
        if self._closed or not self._worker.submit(Feedback(feedback)):
            self.stats.record("queue_full", "feedback")
            return False
        return True

    def submit_checkin(self, checkin: dict[str, Any]) -> bool:
        """Queue a cron check-in for the reporters; False (and counted) when there is no room."""
        if self._closed or not self._worker.submit(CheckIn(checkin)):
            self.stats.record("queue_full", "monitor")
            return False
        return True

    # -- lifecycle ----------------------------------------------------------------------------

    def process_pending(self, timeout: float | None = None) -> bool:
        """Wait until the worker has handed everything captured so far to the reporters (built,
        filtered, encoded), without waiting for any reporter to deliver it; False on timeout."""
        self._send_all_coalesced()
        if self.sessions is not None:
            self.sessions.flush()
        return self._worker.flush(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything captured so far is delivered; False if ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # The count of coalesced repeats goes out now: no later event of that error may come.
        self._send_all_coalesced()
        if self.sessions is not None:
            self.sessions.flush()
        ok = self._worker.flush(timeout)
        for reporter in self.reporters:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ok = reporter.flush(remaining) and ok
            except Exception:
                logger.exception("tripwire: reporter %s failed to flush", reporter.name)
                ok = False
        return ok

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout``), then stop the worker and the reporters."""
        if self._closed:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.repeats is not None:
            self.repeats.close()
            self._send_all_coalesced()
        if self.sessions is not None:
            self.sessions.close()
        if self.profiler is not None:
            self.profiler.close()  # its last chunk goes to the worker before the worker stops
        _flushed, left = self._worker.close(timeout)
        for job in left:
            self._count_dropped_job(job)
        self._closed = True
        for reporter in self.reporters:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                reporter.close(remaining)
            except Exception:
                logger.exception("tripwire: reporter %s failed to close", reporter.name)


def _trace_context() -> tuple[str, str | None]:
    # Inside a sampled span an error is linked to it (contexts.trace), so the UI can go from the
    # error to its transaction; else it carries the unit of work's trace id.
    span = active_span()
    if span is not None:
        return span.trace_id, span.span_id
    return _scope.trace_id(), None


def _safe_text(exc: BaseException) -> str:
    try:
        return str(exc)[:200]
    except Exception:  # a broken __str__ must not break the capture
        return ""


def _message_key(message: object, level: str, event: Event | None, fingerprint: Any) -> ErrorKey:
    # Grouped like the collector groups it: by the template (logging's record.msg).
    logentry = (event or {}).get("logentry")
    template = logentry.get("message") if isinstance(logentry, dict) else None
    if not isinstance(template, str):
        # Never str() an arbitrary object here: a broken __str__ would lose the event.
        template = message if isinstance(message, str) else type(message).__qualname__
    return message_key(level, template, fingerprint)


def _overrides(scope_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    if not scope_kwargs:
        return {}
    unknown = set(scope_kwargs) - SCOPE_KWARGS
    if unknown:
        # Never raise into user code: log and ignore what we do not understand.
        logger.warning("tripwire: ignoring unknown capture arguments %s", sorted(unknown))
    return {k: v for k, v in scope_kwargs.items() if k in SCOPE_KWARGS}
