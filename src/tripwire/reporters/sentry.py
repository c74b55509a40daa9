"""Sentry envelopes: to our collector, sentry.io, GlitchTip, Bugsink, or any Sentry-protocol server.

Events go one per envelope (the protocol allows one event per envelope) to
``{scheme}://{host}{path}/api/{project}/envelope/`` with ``X-Sentry-Auth``; release health goes as
``session`` / ``sessions`` items (at most 100 per envelope) and what the SDK dropped as
``client_report`` items, at most every 30 s and on flush.

>>> SentryReporter(dsn="https://key@sentry.example.com/42")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._dsn import Dsn
from .._types import Event, SessionBatch
from .._version import __version__
from .http import HttpReporter, Payload

if TYPE_CHECKING:
    from .._options import Options
    from .._stats import Drop, DropCounter

SDK_NAME = "tripwire.python"
CLIENT = f"{SDK_NAME}/{__version__}"
MAX_SESSION_ITEMS = 100
CLIENT_REPORT_INTERVAL = 30.0
_JSON = "application/json"
#: Content type of a ``span`` item in Sentry's span v2 format (a batch: ``{"items": [...]}``).
SPAN_V2 = "application/vnd.sentry.items.span.v2+json"

#: Our drop reasons in the Sentry client-report vocabulary.
SENTRY_REASONS = {
    "queue_full": "queue_overflow",
    "rate_limited": "ratelimit_backoff",
    "network_error": "network_error",
    "rejected": "send_error",
    "too_large": "send_error",
    "before_send": "before_send",
    "sample_rate": "sample_rate",
    "ignored": "event_processor",
    "deduplicated": "event_processor",
    "internal_error": "internal_sdk_error",
    "insufficient_data": "insufficient_data",
    "max_samples": "buffer_overflow",
}


def _json(value: Any) -> bytes:
    encoder = _encoders[0] if _encoders else _new_encoder()
    return encoder(value).encode("utf-8", "replace")


#: The encoder's ``encode``, made once (``json.dumps`` with options builds a JSONEncoder per call,
#: and a transaction is three calls).
_encoders: list[Callable[[Any], str]] = []


def _new_encoder() -> Callable[[Any], str]:
    import json  # on the worker, not at init: json imports re and enum (3 ms of CPU)

    # Events are already made JSON-safe by the event builder; repr() is the last resort for anything
    # a before_send hook or an integration slipped in.
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode
    _encoders.append(encoder)
    return encoder


def _now_rfc3339() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def envelope_items(items: list[tuple[dict[str, Any], bytes]]) -> bytes:
    """The item part of an envelope: for each item its header line (with ``length``) and payload."""
    parts: list[bytes] = []
    for header, body in items:
        parts += [_json({**header, "length": len(body)}), b"\n", body, b"\n"]
    return b"".join(parts)


class SentryReporter(HttpReporter):
    """Send to a Sentry-protocol server given its DSN.

    Options: ``dsn`` (required), ``send_client_reports`` (default from the client, True), and the
    HTTP options of :class:`~tripwire.reporters.http.HttpReporter` (``http_timeout``, ``spool_dir``,
    ``spool_max_bytes``, ``max_outbox_bytes``, ``backoff_max``, ``name``, ...).
    """

    name = "sentry"
    #: Drops are reported even when no event is sent (everything filtered, or rate limited).
    idle_interval: float | None = 60.0

    def __init__(
        self,
        dsn: str | Dsn,
        options: Options | None = None,
        *,
        send_client_reports: bool | None = None,
        **http_options: Any,
    ) -> None:
        super().__init__(**http_options)
        if isinstance(dsn, Dsn):
            self.dsn = dsn
        else:
            self.dsn = Dsn.parse(dsn, option=f"reporters[{self.name}].dsn")
        self.url = self.dsn.envelope_url
        self.send_client_reports = send_client_reports
        self._auth = f"Sentry sentry_version=7, sentry_key={self.dsn.public_key}, sentry_client={CLIENT}"
        self._last_report = time.monotonic()
        if options is not None:
            self.configure(options)

    def configure(self, options: Options) -> None:
        super().configure(options)
        if self.send_client_reports is None:
            self.send_client_reports = options.send_client_reports

    def spool_key(self) -> str:
        import hashlib

        digest = hashlib.sha1(f"{self.url} {self.dsn.public_key}".encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"

    def _envelope_header(self, event_id: str | None = None) -> dict[str, Any]:
        header: dict[str, Any] = {"dsn": str(self.dsn), "sdk": {"name": SDK_NAME, "version": __version__}}
        if event_id:
            header["event_id"] = event_id
        return header

    # -- encoding ----------------------------------------------------------------------------------
    def encode_event(self, event: Event) -> Payload | None:
        # The size budget encoded this very event to measure it (compact UTF-8 JSON, as _json does):
        # send those bytes rather than encoding ~10-40 KB a second time.
        from .._budget import encoded  # loaded with the event builder, on the worker's first event

        body = encoded(event) or _json(event)
        items = envelope_items([({"type": "event", "content_type": "application/json"}, body)])
        event_id = event.get("event_id")
        return Payload(
            url=self.url,
            body=items,
            categories={"error": 1},
            kind="event",
            meta={"header": self._envelope_header(event_id if isinstance(event_id, str) else None)},
        )

    #: A transaction's profile goes as a ``profile`` item in the transaction's envelope.
    accepts_profiles = True

    def send_transaction(
        self,
        transaction: Event,
        trace: dict[str, str] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> None:
        if profile is not None and self.limits.is_limited(("profile",)):
            # Profiles held back (sentry.io's quota, or a server that does not store them): the
            # transaction still goes, alone.
            self.stats.record("rate_limited", "profile", reporter=self.name)
            profile = None
        payload = self.encode_transaction(transaction, trace, profile)
        if payload is not None:
            self.submit(payload)

    def encode_transaction(
        self,
        transaction: Event,
        trace: dict[str, str] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> Payload:
        """A ``transaction`` item (and its ``profile`` item, if any); the envelope header carries the
        trace (dynamic sampling context)."""
        body = _json(transaction)
        parts = [({"type": "transaction", "content_type": _JSON}, body)]
        if profile is not None:
            parts.append(({"type": "profile", "content_type": _JSON}, _json(profile)))
        items = envelope_items(parts)
        event_id = transaction.get("event_id")
        header = self._envelope_header(event_id if isinstance(event_id, str) else None)
        if trace:
            header["trace"] = {**trace, "public_key": self.dsn.public_key}
        spans = transaction.get("spans")
        return Payload(
            url=self.url,
            body=items,
            # Errors keep priority: a full outbox drops transactions first (counted per category).
            # Not "profile": a limit on profiles alone must not hold the transaction back (the
            # profile is left out when its category is limited, see send_transaction).
            categories={"transaction": 1, "span": 1 + (len(spans) if isinstance(spans, list) else 0)},
            kind="transaction",
            low_priority=True,
            meta={"header": header},
        )

    def send_spans(self, spans: list[dict[str, Any]]) -> None:
        self.submit(self.encode_spans(spans))

    def encode_spans(self, spans: list[dict[str, Any]]) -> Payload:
        """One span-v2 ``span`` item holding ``spans`` (late spans: their transaction went before)."""
        header = {"type": "span", "item_count": len(spans), "content_type": SPAN_V2}
        return Payload(
            url=self.url,
            body=envelope_items([(header, _json({"items": spans}))]),
            categories={"span": len(spans)},
            kind="span",
            low_priority=True,
            meta={"header": self._envelope_header()},
        )

    def encode_sessions(self, batch: SessionBatch) -> list[Payload]:
        items = [({"type": "sessions", "content_type": _JSON}, _json(a)) for a in batch.aggregates]
        items += [({"type": "session", "content_type": _JSON}, _json(u)) for u in batch.updates]
        payloads = []
        for start in range(0, len(items), MAX_SESSION_ITEMS):
            chunk = items[start : start + MAX_SESSION_ITEMS]
            payloads.append(
                Payload(
                    url=self.url,
                    body=envelope_items(chunk),
                    categories={"session": len(chunk)},
                    kind="sessions",
                    low_priority=True,
                    meta={"header": self._envelope_header()},
                )
            )
        return payloads

    def send_profile_chunk(self, chunk: dict[str, Any]) -> None:
        header = {"type": "profile_chunk", "content_type": _JSON, "platform": chunk.get("platform", "python")}
        self.submit(
            Payload(
                url=self.url,
                body=envelope_items([(header, _json(chunk))]),
                categories={"profile_chunk": 1},
                kind="profile_chunk",
                low_priority=True,
                meta={"header": self._envelope_header()},
            )
        )

    def send_checkin(self, checkin: dict[str, Any]) -> None:
        self.submit(
            Payload(
                url=self.url,
                body=envelope_items([({"type": "check_in", "content_type": _JSON}, _json(checkin))]),
                categories={"monitor": 1},
                kind="check_in",
                meta={"header": self._envelope_header()},
            )
        )

    def send_feedback(self, feedback: dict[str, Any]) -> None:
        self.submit(
            Payload(
                url=self.url,
                body=envelope_items([({"type": "feedback", "content_type": _JSON}, _json(feedback))]),
                categories={"feedback": 1},
                kind="feedback",
                meta={"header": self._envelope_header(feedback.get("event_id"))},
            )
        )

    def client_report(self, drops: Counter[Drop]) -> Payload | None:
        """A ``client_report`` envelope for ``drops``; None when there is nothing to report."""
        merged: Counter[tuple[str, str]] = Counter()
        for drop, quantity in drops.items():
            if quantity > 0:
                merged[(SENTRY_REASONS.get(drop.reason, drop.reason), drop.category)] += quantity
        if not merged:
            return None
        report = {
            "timestamp": time.time(),
            "discarded_events": [
                {"reason": reason, "category": category, "quantity": quantity}
                for (reason, category), quantity in sorted(merged.items())
            ],
        }
        return Payload(
            url=self.url,
            body=envelope_items([({"type": "client_report", "content_type": _JSON}, _json(report))]),
            categories={"internal": 1},
            kind="client_report",
            low_priority=True,
            count_drops=False,
            meta={"header": self._envelope_header()},
        )

    def render(self, payload: Payload) -> tuple[bytes, dict[str, str]]:
        header = {**payload.meta.get("header", {}), "sent_at": _now_rfc3339()}
        headers = {
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": self._auth,
            "User-Agent": CLIENT,
        }
        return _json(header) + b"\n" + payload.body, headers

    # -- client reports ----------------------------------------------------------------------------
    def _report_drops(self) -> None:
        if not self.send_client_reports:
            return
        self._last_report = time.monotonic()
        payload = self.client_report(self.stats.take_unreported(self.name))
        if payload is not None:
            self.submit(payload)

    def send_event(self, event: Event) -> None:
        super().send_event(event)
        if time.monotonic() - self._last_report >= CLIENT_REPORT_INTERVAL:
            self._report_drops()

    def bind(self, stats: DropCounter) -> None:
        super().bind(stats)
        if self.send_client_reports and self.idle_interval is not None:
            # The idle timer runs on the sender thread: start it now, not at the first event, which
            # may never come when every event is filtered out.
            self._worker.start()

    def on_idle(self) -> None:
        if self.idle_interval is not None and time.monotonic() - self._last_report >= self.idle_interval:
            self._report_drops()

    def flush(self, timeout: float | None) -> bool:
        if not self._closed:
            self._report_drops()
        return super().flush(timeout)
