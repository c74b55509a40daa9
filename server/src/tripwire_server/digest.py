"""Digest: turn acknowledged envelopes into stored events, issues and counters, in the background.

:class:`EnvelopeProcessor` is pure (parse, normalize, group); :class:`Digester` is the thread that
feeds queued envelopes through it and lets the store write the results. The store deletes each
queue row in the same transaction that writes its results, so a crash at any point either keeps
the row (it is digested again after restart) or keeps its results, never neither and never both.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from . import _json, bugsnag_ingest, feedback, grouping, item_types, logs
from .config import CollectorConfig, Limits
from .envelope import EnvelopeError, Item, parse_envelope
from .ingest import decode_stored
from .monitors import parse_checkin
from .normalize import (
    EventTooLarge,
    derived_tags,
    describe,
    may_hold_nul,
    normalize_event,
    normalize_event_id,
    parse_timestamp,
    trim,
    without_nul,
)
from .performance import model as perf_model
from .performance import otlp
from .performance.issues import performance_events
from .profiling import model as profile_model
from .store import open_store
from .store.base import QueuedEnvelope, Store
from .store.batch import (
    AttachmentBudget,
    AttachmentRow,
    DigestedEvent,
    EnvelopeResult,
    OutcomeRow,
    SessionCount,
)

log = logging.getLogger("tripwire_server")

#: Item types stored as issues/events.
EVENT_TYPES = frozenset({"event"})


def _hour(ts: float) -> float:
    return float(int(ts // 3600) * 3600)


class EnvelopeProcessor:
    """Parses and normalizes queued envelopes (implements :class:`~.store.batch.Processor`)."""

    def __init__(
        self,
        limits: Limits,
        *,
        attachment_budget: AttachmentBudget | None = None,
        max_batch_bytes: int = CollectorConfig.digest_batch_bytes,
    ) -> None:
        self.limits = limits
        #: The collector's default attachment budget (a project may have its own).
        self.attachment_budget = attachment_budget or AttachmentBudget(
            per_hour=CollectorConfig.attachment_bytes_per_hour, total=CollectorConfig.attachment_bytes_total
        )
        #: Decompressed bytes one batch may hold: a batch ends after the envelope that passes it.
        self.max_batch_bytes = max_batch_bytes

    def prepare(self, rows: Sequence[QueuedEnvelope]) -> list[EnvelopeResult]:
        out: list[EnvelopeResult] = []
        held = 0
        for row in rows:
            if out and held >= self.max_batch_bytes:
                break  # the rest stay queued for the next batch: memory is bounded by bytes
            result = EnvelopeResult(queue_id=row.id)
            try:
                held += self._envelope(row, result)
            except Exception as exc:  # one bad envelope must never stall the queue
                log.warning("could not digest envelope %s: %s", row.id, exc)
                self._count(result, row, "envelope", "invalid")
            out.append(result)
        return out

    @staticmethod
    def _count(
        result: EnvelopeResult, row: QueuedEnvelope, category: str, reason: str, quantity: int = 1
    ) -> None:
        result.outcomes.append(
            OutcomeRow(row.project_id, _hour(row.received_at), "intake", category, reason, quantity)
        )

    def _envelope(self, row: QueuedEnvelope, result: EnvelopeResult) -> int:
        """Digest one envelope into ``result``; return how many decompressed bytes it held."""
        if row.kind == "store":
            self._event(row, result, row.body, None)
            return len(row.body)
        body = row.body
        kind, _, encoding = row.kind.partition(":")
        if encoding:
            body = decode_stored(body, encoding)
        if kind in (bugsnag_ingest.NOTIFY_KIND, bugsnag_ingest.SESSIONS_KIND):
            self._bugsnag(row, result, kind, body)
            return len(body)
        header, items = parse_envelope(
            body, max_header=self.limits.max_header_size, max_items=self.limits.max_items
        )
        envelope_event_id = normalize_event_id(header.get("event_id"))
        sessions = 0
        for item in items:
            kind = item.type
            try:
                if kind in EVENT_TYPES:
                    self._event(row, result, item.payload, envelope_event_id)
                elif kind == "attachment":
                    self._attachment(row, result, item, envelope_event_id)
                elif kind in ("session", "sessions"):
                    sessions += 1
                    if sessions > self.limits.max_session_items:
                        self._count(result, row, kind, "too_many")
                        continue
                    if kind == "session":
                        self._session(row, result, item.json())
                    else:
                        self._aggregates(row, result, item.json())
                    self._count(result, row, kind, "accepted")
                elif kind == "check_in":
                    result.checkins.append(parse_checkin(item.json(), row.project_id, row.received_at))
                    self._count(result, row, kind, "accepted")
                elif kind == "log":
                    records = logs.from_log_item(item.json(), row.project_id, row.received_at)
                    result.logs.extend(records)
                    self._count(result, row, kind, "accepted", len(records))
                elif kind in ("feedback", "user_report"):
                    parse = feedback.from_feedback if kind == "feedback" else feedback.from_user_report
                    result.feedback.append(parse(item.json(), row.project_id, row.received_at))
                    self._count(result, row, kind, "accepted")
                elif kind in ("transaction", "span", "otel_span"):
                    self._performance(row, result, item, envelope_event_id)
                elif kind in ("profile", "profile_chunk"):
                    self._profile(row, result, item)
                elif kind == "client_report":
                    self._client_report(row, result, item.json())
                    self._count(result, row, kind, "accepted")
                elif (known := item_types.lookup(kind)) is not None and not known.stored:
                    self._count(result, row, kind, item_types.NOT_STORED, item_types.quantity(item.headers))
                else:
                    self._count(result, row, trim(kind, 64), "unknown_type")
            except EventTooLarge:
                self._count(result, row, kind, "too_large")
            except (EnvelopeError, ValueError, TypeError, KeyError, AttributeError) as exc:
                log.debug("invalid %s item in envelope %s: %r", kind, row.id, exc)
                self._count(result, row, trim(kind, 64), "invalid")
        return len(body)

    def _bugsnag(self, row: QueuedEnvelope, result: EnvelopeResult, kind: str, body: bytes) -> None:
        """A BugSnag notify or sessions body: its events and session counts, as Sentry's would be."""
        try:
            payload = _json.loads(body)
            if may_hold_nul(body):
                payload = without_nul(payload)
            if kind == bugsnag_ingest.SESSIONS_KIND:
                for release, env, started, n in bugsnag_ingest.session_counts_of(payload):
                    if n:
                        bucket = (trim(release, 250), trim(env, 64), _hour(started))
                        result.sessions.append(SessionCount(row.project_id, *bucket, started=n, healthy=n))
                self._count(result, row, "sessions", "accepted")
                return
            events = bugsnag_ingest.events_of(payload)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.debug("invalid BugSnag payload in %s: %r", row.id, exc)
            self._count(result, row, kind, "invalid")
            return
        for original, event in events:
            try:
                self._event_data(row, result, event, None, len(_json.dumps(event)))
            except EventTooLarge:
                self._count(result, row, "event", "too_large")
                continue
            outcome = bugsnag_ingest.session_outcome(original)
            if outcome is not None:
                release, env, started, fate = outcome
                s = SessionCount(row.project_id, trim(release, 250), trim(env, 64), _hour(started))
                # The session was counted healthy when it started: it is now crashed or errored.
                s.healthy = -1
                if fate == "crashed":
                    s.crashed = 1
                else:
                    s.errored = 1
                result.sessions.append(s)

    def _event(
        self,
        row: QueuedEnvelope,
        result: EnvelopeResult,
        payload: bytes,
        event_id: str | None,
    ) -> None:
        try:
            data = _json.loads(payload)
        except ValueError as exc:
            raise EnvelopeError(f"event payload is not valid JSON: {exc}") from None
        if may_hold_nul(payload):
            # PostgreSQL text cannot hold U+0000: replace it everywhere, on both backends alike.
            data = without_nul(data)
        self._event_data(row, result, data, event_id, len(payload))

    def _event_data(
        self, row: QueuedEnvelope, result: EnvelopeResult, data: Any, event_id: str | None, payload_size: int
    ) -> None:
        ev = normalize_event(
            data,
            event_id=event_id,
            received_at=row.received_at,
            remote_addr=row.remote_addr,
            max_size=self.limits.max_event_size,
            payload_size=payload_size,
        )
        g = grouping.group(ev)
        ev["grouping"] = {"version": g.version, "hash": g.hash, "strategy": g.strategy}
        title, culprit, type_, value = describe(ev)
        ev["title"] = title
        ev["culprit"] = culprit
        blob = _json.pack_event(ev)
        result.events.append(
            DigestedEvent(
                project_id=row.project_id,
                event_id=ev["event_id"],
                timestamp=ev["timestamp"],
                received_at=row.received_at,
                level=ev["level"],
                title=title,
                culprit=culprit,
                type=type_,
                value=value,
                release=ev.get("release"),
                environment=ev.get("environment"),
                grouping_version=g.version,
                grouping_hash=g.hash,
                grouping_explanation=g.explanation(),
                tags=derived_tags(ev),
                data=blob,
                occurrences=1 + coalesced_repeats(ev),
                legacy_hash=grouping.legacy_hash(ev),
                trace_id=_trace_context(ev, "trace_id"),
                span_id=_trace_context(ev, "span_id"),
            )
        )

    def _performance(
        self, row: QueuedEnvelope, result: EnvelopeResult, item: Item, event_id: str | None
    ) -> None:
        """A ``transaction`` or span-v2 ``span`` item: transactions for the rollups and samples
        (store/_performance.py) and an event per N+1 query found in them."""
        if len(item.payload) > self.limits.max_event_size:
            raise EventTooLarge("transaction over the size limit")
        data = _json.loads(item.payload)
        if may_hold_nul(item.payload):
            data = without_nul(data)
        window = None
        if item.type == "transaction":
            txs = [perf_model.from_transaction(data, row.project_id, event_id=event_id)]
            window = profile_model.window_of(data, row.project_id, txs[0].event_id)
        elif item.type == "otel_span":
            # One OTLP/JSON span (or a whole export): grouped like an OTLP request.
            export = data if isinstance(data, dict) and "resourceSpans" in data else None
            export = export or {"resourceSpans": [{"scopeSpans": [{"spans": [data]}]}]}
            txs = otlp.transactions(otlp.plain_from_json(export), row.project_id)
        else:
            hour = _hour(row.received_at)
            spans = perf_model.span_v2_items(data)
            txs, orphans = perf_model.from_spans_v2(spans, row.project_id, event_id=event_id)
            if orphans:
                # Spans without a span id, or whose segment span is not in the envelope, cannot
                # be rolled up: counted, not stored.
                result.outcomes.append(
                    OutcomeRow(row.project_id, hour, "intake", "span", "no_segment", orphans)
                )
            if len(spans) > orphans:
                result.outcomes.append(
                    OutcomeRow(row.project_id, hour, "intake", "span", "accepted", len(spans) - orphans)
                )
        for tx in txs:
            if not perf_model.fit_clock(tx, row.received_at):
                self._count(result, row, "transaction", "too_old")
                continue
            if window is not None and window.event_id == tx.event_id:
                # Where a continuous profile's samples belong (shifted with the transaction).
                result.profile_windows.append(
                    dataclasses.replace(window, start=tx.start_timestamp, end=tx.timestamp)
                )
            found = performance_events(tx, row.received_at)
            tx.has_issue = bool(found)
            result.transactions.append(tx)
            result.events.extend(found)
            self._count(result, row, "transaction", "accepted")

    def _profile(self, row: QueuedEnvelope, result: EnvelopeResult, item: Item) -> None:
        """A ``profile`` (one transaction's) or ``profile_chunk`` (continuous) item: aggregated and
        kept by the store (store/_profiles.py), which attributes a chunk's samples to transactions."""
        if len(item.payload) > self.limits.max_profile_size:
            raise EventTooLarge(f"{item.type} over the size limit")
        data = _json.loads(item.payload)
        if may_hold_nul(item.payload):
            data = without_nul(data)
        parse = profile_model.from_profile if item.type == "profile" else profile_model.from_chunk
        profile = parse(data)
        if not profile_model.fit_clock(profile, row.received_at):
            self._count(result, row, item.type, "too_old")
            return
        result.profiles.append((row.project_id, profile))
        self._count(result, row, item.type, "accepted")

    def _attachment(
        self, row: QueuedEnvelope, result: EnvelopeResult, item: Item, event_id: str | None
    ) -> None:
        if len(item.payload) > self.limits.max_attachment_size:
            self._count(result, row, "attachment", "too_large")
            return
        if event_id is None:
            self._count(result, row, "attachment", "invalid")
            return
        h = item.headers
        result.attachments.append(
            AttachmentRow(
                project_id=row.project_id,
                event_id=event_id,
                filename=trim(h.get("filename") or "attachment", 256),
                content_type=trim(h.get("content_type") or "application/octet-stream", 128),
                attachment_type=trim(h.get("attachment_type") or "event.attachment", 64),
                data=item.payload,
                received_at=row.received_at,
            )
        )

    @staticmethod
    def _release_env(attrs: Any) -> tuple[str, str]:
        if not isinstance(attrs, dict) or not attrs.get("release"):
            raise ValueError("session without attrs.release")
        return trim(attrs["release"], 250), trim(attrs.get("environment") or "production", 64)

    def _session(self, row: QueuedEnvelope, result: EnvelopeResult, data: Any) -> None:
        release, env = self._release_env(data.get("attrs"))
        started = parse_timestamp(data.get("started")) or row.received_at
        s = SessionCount(row.project_id, release, env, _hour(started))
        if data.get("init") is True:
            s.started = 1
        status = data.get("status", "ok")
        errors = int(data.get("errors") or 0)
        if status == "crashed":
            s.crashed = 1
        elif status == "abnormal":
            s.abnormal = 1
        elif status == "errored":
            s.errored = 1
        elif status == "exited":
            if errors > 0:
                s.errored = 1
            else:
                s.healthy = 1
        # "ok" updates are progress reports: counted when the session starts and when it ends.
        if s.started or s.crashed or s.abnormal or s.errored or s.healthy:
            result.sessions.append(s)

    def _aggregates(self, row: QueuedEnvelope, result: EnvelopeResult, data: Any) -> None:
        release, env = self._release_env(data.get("attrs"))
        for agg in data.get("aggregates") or []:
            started = parse_timestamp(agg.get("started")) or row.received_at
            counts = [int(agg.get(k) or 0) for k in ("exited", "errored", "abnormal", "crashed")]
            if min(counts) < 0:
                raise ValueError("negative session count")
            result.sessions.append(
                SessionCount(row.project_id, release, env, _hour(started), sum(counts), *counts)
            )

    def _client_report(self, row: QueuedEnvelope, result: EnvelopeResult, data: Any) -> None:
        ts = parse_timestamp(data.get("timestamp")) or row.received_at
        for field in ("discarded_events", "rate_limited_events", "filtered_events"):
            for entry in data.get(field) or []:
                quantity = int(entry.get("quantity") or 0)
                if quantity <= 0:
                    continue
                reason = trim(entry.get("reason") or field, 64)
                result.outcomes.append(
                    OutcomeRow(
                        row.project_id,
                        _hour(min(ts, row.received_at)),
                        "client",
                        trim(entry.get("category") or "default", 64),
                        reason,
                        quantity,
                    )
                )


class Digester:
    """Digests the ingest queue and sweeps retention now and then, in a background thread.

    ``wake`` and ``stop`` may be :mod:`multiprocessing` events: :func:`digest_process_main` runs
    the same loop in a child process, where it does not compete with the HTTP event loop for the
    GIL.
    """

    def __init__(
        self,
        store: Store,
        config: CollectorConfig,
        *,
        wake: Any = None,
        stop: Any = None,
        idle_wait: float = 0.2,
    ) -> None:
        #: Seconds to wait for a wake-up when the queue is empty (other processes may fill it).
        self.idle_wait = idle_wait
        self.store = store
        self.config = config
        self.processor = EnvelopeProcessor(
            config.limits,
            attachment_budget=AttachmentBudget(
                per_hour=config.attachment_bytes_per_hour, total=config.attachment_bytes_total
            ),
            max_batch_bytes=config.digest_batch_bytes,
        )
        self._wake = wake if wake is not None else threading.Event()
        self._stop = stop if stop is not None else threading.Event()
        self._thread: threading.Thread | None = None
        self._next_retention = time.monotonic() + min(5.0, config.retention_interval)
        #: Envelopes digested by this digester (for tests and the status endpoint).
        self.digested = 0
        self.errors = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="tripwire-digest", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Tell the digester that new envelopes were queued."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, parent_pid: int | None = None) -> None:
        """The loop; returns when stopped (or, in a child process, when the parent is gone)."""
        backoff = 0.1
        while not self._stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return  # the server was killed: do not linger as an orphan
            try:
                started = time.monotonic()
                written = getattr(self.store, "attachment_bytes_written", 0)
                done = self.store.digest_batch(self.config.digest_batch_size, self.processor)
                self.digested += done
                backoff = 0.1
                if getattr(self.store, "attachment_bytes_written", 0) - written >= LARGE_WRITE:
                    # Storing megabytes holds the database's write lock and fills the log that the
                    # ingest writer's next sync flushes: like large envelopes at intake, yield.
                    self._stop.wait(LARGE_YIELD * (time.monotonic() - started))
            except Exception:
                # A database hiccup (lock timeout, deadlock, restart): the rows stay queued.
                self.errors += 1
                log.exception("digest failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if time.monotonic() >= self._next_retention:
                self._retention()
            if done == 0:
                # Other processes may fill the queue too (PostgreSQL): poll as well as wait.
                self._wake.wait(self.idle_wait)
                self._wake.clear()
            elif self._should_linger(done):
                # Let the queue refill: the next batch pays its fixed costs for more envelopes.
                self._stop.wait(self.config.digest_linger)

    def _should_linger(self, done: int) -> bool:
        """After a batch that was not full, whether little enough is waiting to wait for more.

        A batch may also end early at ``digest_batch_bytes`` (large envelopes): with a backlog
        behind it, the next batch starts at once.
        """
        limit = self.config.digest_batch_size
        if self.config.digest_linger <= 0 or done >= limit:
            return False
        try:
            return self.store.queue_depth() < limit // 2
        except Exception:
            return False  # the next batch will meet (and report) whatever is wrong

    def _retention(self) -> None:
        self._next_retention = time.monotonic() + self.config.retention_interval
        try:
            deleted = self.store.apply_retention(
                default_days=self.config.retention_days,
                default_max_events=self.config.retention_max_events,
                now=time.time(),
            )
            if deleted:
                log.info("retention removed %d events", deleted)
            self.store.apply_perf_retention(
                rollup_days=self.config.performance_retention_days,
                sample_days=self.config.sample_retention_days,
                now=time.time(),
            )
            self.store.apply_profile_retention(days=self.config.profile_retention_days, now=time.time())
        except Exception:
            log.exception("retention sweep failed")


def digest_process_main(config: CollectorConfig, parent_pid: int) -> None:
    """Entry point of the digest child process of ``tripwire serve``.

    It polls the queue (every 50 ms when idle) rather than waiting on a cross-process event, and
    stops on SIGTERM after the batch in hand; Ctrl-C is left to the parent, which sends SIGTERM.

    It runs ``config.digest_niceness`` steps below the server's CPU priority (``os.nice``).

    On SQLite its connections commit with ``synchronous=NORMAL``: a digest transaction lost to a
    power cut only loses the deletion of its queue rows too (WAL commits are ordered), so the
    envelopes are digested again; the acknowledgement's durability comes from the intake commit.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if config.digest_niceness > 0:
        # Below the server: when both want the CPUs, acknowledged requests are answered first and
        # the digest catches up once ingest is idle; ingest refuses past ``max_backlog``.
        try:
            os.nice(config.digest_niceness)
        except OSError as exc:
            log.warning("could not lower the digest's CPU priority: %s", exc)
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    store = open_store(config.effective_database_url, sqlite_synchronous="NORMAL")
    try:
        Digester(store, config, stop=stop, idle_wait=0.05).run(parent_pid=parent_pid)
    finally:
        store.close()


def _trace_context(ev: dict[str, Any], key: str) -> str | None:
    trace = (ev.get("contexts") or {}).get("trace")
    value = trace.get(key) if isinstance(trace, dict) else None
    if not isinstance(value, str) or not 1 <= len(value) <= 32:
        return None
    value = value.lower()
    return value if all(c in "0123456789abcdef" for c in value) else None


#: Attachment bytes stored by one digest batch from which the digester then pauses
#: ``LARGE_YIELD`` times as long as the batch took (intake.IntakeWriter paces large envelopes so).
LARGE_WRITE = 1024 * 1024
LARGE_YIELD = 4.0

#: More than this many coalesced occurrences on one event is not a plausible SDK count.
MAX_COALESCED = 10_000_000


def coalesced_repeats(ev: dict[str, Any]) -> int:
    """Occurrences an SDK's repeat limit counted but did not send, carried by this event.

    The tripwire SDK sends at most ``repeat_limit`` events per minute for one error and puts the
    number of the others on the next one (``contexts.repeats.coalesced``): the issue's event count
    and hourly counts include them, so an error storm shows its real size.
    """
    repeats = (ev.get("contexts") or {}).get("repeats")
    if not isinstance(repeats, dict):
        return 0
    value = repeats.get("coalesced")
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, min(value, MAX_COALESCED))
