"""Queued bodies -> what the store writes: :class:`EnvelopeProcessor` parses, normalizes and
groups a batch of queued envelopes (and BugSnag payloads) into :class:`~..store.digest_records.EnvelopeResult`
records, without touching the database (:mod:`.worker` runs it and lets the store write the results).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from .. import _json, bugsnag, feedback, grouping, item_types, logs
from ..bodies import decode_stored
from ..config import CollectorConfig, Limits
from ..envelope import EnvelopeError, Item, parse_envelope
from ..monitors import parse_checkin
from ..normalize import (
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
from ..performance import model as perf_model
from ..performance import otlp
from ..performance.issues import performance_events
from ..profiling import model as profile_model
from ..store.base import QueuedEnvelope, hour_start
from ..store.digest_records import (
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


class EnvelopeProcessor:
    """Parses and normalizes queued envelopes (implements :class:`~..store.digest_records.Processor`)."""

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
            OutcomeRow(row.project_id, hour_start(row.received_at), "intake", category, reason, quantity)
        )

    def _envelope(self, row: QueuedEnvelope, result: EnvelopeResult) -> int:
        """Digest one envelope into ``result``; return how many decompressed bytes it held."""
        body = row.body
        kind, _, encoding = row.kind.partition(":")
        if encoding:
            body = decode_stored(body, encoding)
        if kind in (bugsnag.NOTIFY_KIND, bugsnag.SESSIONS_KIND):
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
            if kind == bugsnag.SESSIONS_KIND:
                for release, env, started, n in bugsnag.session_counts_of(payload):
                    if n:
                        bucket = (trim(release, 250), trim(env, 64), hour_start(started))
                        result.sessions.append(SessionCount(row.project_id, *bucket, started=n, healthy=n))
                self._count(result, row, "sessions", "accepted")
                return
            events = bugsnag.events_of(payload)
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
            outcome = bugsnag.session_outcome(original)
            if outcome is not None:
                release, env, started, fate = outcome
                s = SessionCount(row.project_id, trim(release, 250), trim(env, 64), hour_start(started))
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
        (store/performance.py) and an event per N+1 query found in them."""
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
            hour = hour_start(row.received_at)
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
        kept by the store (store/profiles.py), which attributes a chunk's samples to transactions."""
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
        s = SessionCount(row.project_id, release, env, hour_start(started))
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
                SessionCount(row.project_id, release, env, hour_start(started), sum(counts), *counts)
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
                        hour_start(min(ts, row.received_at)),
                        "client",
                        trim(entry.get("category") or "default", 64),
                        reason,
                        quantity,
                    )
                )


def _trace_context(ev: dict[str, Any], key: str) -> str | None:
    trace = (ev.get("contexts") or {}).get("trace")
    value = trace.get(key) if isinstance(trace, dict) else None
    if not isinstance(value, str) or not 1 <= len(value) <= 32:
        return None
    value = value.lower()
    return value if all(c in "0123456789abcdef" for c in value) else None


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
