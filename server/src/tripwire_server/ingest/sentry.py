"""The Sentry ingest endpoints: ``POST /api/{project_id}/envelope/`` and ``/store/``.

A request is answered 200 only once its envelope is committed to the durable ingest queue; the
digest happens later. Everything else is refused early and explicitly: 401/403 for keys, 400 for
malformed envelopes (with the reason), 413 for oversized bodies or items (including decompression
bombs), 415 for unknown encodings, 429 with ``Retry-After`` and ``X-Sentry-Rate-Limits`` for
quotas, 503 when the queue cannot be written.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import _json, access, item_types  # noqa: F401 - access registers the ``:id`` route convertor
from ..bodies import DecodeError
from ..budget import BudgetExhausted, Reservation
from ..envelope import EnvelopeError, EnvelopeScanner, ItemTooLarge
from ..normalize import normalize_event_id
from ..store.base import Project
from .request import (
    CORS,
    INFLATE_STEP,
    IngestRequest,
    Rejection,
    check_backlog,
    check_project,
    check_quota,
    check_ratio,
    declared_length,
    decoder_of,
    queue,
    read_body,
    respond,
    send_response,
    sentry_key,
)

if TYPE_CHECKING:
    from ..state import CollectorState

#: Item types that count against the per-project event quota (Sentry data categories in the header).
QUOTA_ITEMS = {
    "event": "error",
    "transaction": "transaction",
    "raw_security": "security",
    # End-user text: as bounded as events (size and quota), sentry-sdk files it under "default".
    "feedback": "default",
    "user_report": "default",
}
_QUOTA_TYPES = frozenset(QUOTA_ITEMS)
_RATE_CATEGORIES = "default;error;security;transaction"


async def read_envelope(
    request: IngestRequest, state: CollectorState, reservation: Reservation, project: Project | None
) -> tuple[bytes, str, EnvelopeScanner, Project]:
    """Receive and check an envelope as it streams in: ``(body as received, encoding, scanner,
    project)``.

    An envelope carrying an attachment for a project whose attachment budget is used up is refused
    (429) at the first attachment item header, without reading the rest.

    Only the body as received is kept (that is what the queue stores); the decompressed stream
    goes through an :class:`EnvelopeScanner` piece by piece, so a bomb costs CPU time in bounded
    steps, never memory. Without a key in the request, the key comes from the envelope header's
    ``dsn``: the request is authenticated as soon as that first line is complete, and refused if
    it does not come within the first ``max_header_size`` + 64 KiB bytes.
    """
    limits = state.config.limits
    max_compressed, max_size = limits.max_envelope_compressed, limits.max_envelope_size
    declared_length(request, max_compressed)
    decoder = decoder_of(request)
    scanner = EnvelopeScanner(
        max_header=limits.max_header_size,
        max_items=limits.max_items,
        max_event_size=limits.max_event_size,
        max_attachment_size=limits.max_attachment_size,
        max_profile_size=limits.max_profile_size,
        quota_types=_QUOTA_TYPES,
        check_event=lambda payload: _not_sentry(payload, "event"),
    )
    prefix_limit = limits.max_header_size + 64 * 1024
    chunks: list[bytes] = []
    received = produced = 0
    attachments_checked = False
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_compressed:
                raise Rejection(413, f"body is over the {max_compressed} byte limit")
            chunks.append(chunk)
            await reservation.resize(received + scanner.buffered)
            # Until the key is known, inflate no more than a header line at a time.
            for piece in decoder.inflate(chunk, INFLATE_STEP if project else limits.max_header_size + 1):
                produced += len(piece)
                if produced > max_size:
                    raise Rejection(413, f"decompressed body is over the {max_size} byte limit")
                check_ratio(produced, decoder, limits.max_inflate_ratio)
                if project is None and scanner.header is None and (nl := piece.find(b"\n")) >= 0:
                    # Authenticate from the first line before looking at anything after it.
                    scanner.feed(piece[: nl + 1])
                    project = await _project_from_dsn(request, state, scanner.header or {})
                    reservation.bind(project.id)
                    decoder.step = INFLATE_STEP
                    piece = piece[nl + 1 :]
                scanner.feed(piece)
                if scanner.attachment_headers and not attachments_checked and project is not None:
                    # A project whose attachment budget is used up refuses at the first attachment
                    # header: reading (and inflating) the rest of a large upload only to refuse it
                    # costs every other client the server's time.
                    attachments_checked = True
                    quota = state.attachment_quota
                    refusal = await quota.check(project, b"", "envelope", scanner.attachment_headers)
                    if refusal is not None:
                        raise Rejection(429, refusal.message, refusal.headers)
                if decoder.compressed:
                    await asyncio.sleep(0)  # a bomb inflates in steps, between other requests
            if project is None and received > prefix_limit:
                raise Rejection(
                    400, f"malformed envelope: no envelope header in the first {prefix_limit} bytes"
                )
            await reservation.resize(received + scanner.buffered)
        if received:
            decoder.finish()
        scanner.finish()
    except DecodeError as exc:
        raise Rejection(400, str(exc)) from None
    except ItemTooLarge as exc:
        raise Rejection(413, str(exc)) from None
    except EnvelopeError as exc:
        raise Rejection(400, f"malformed envelope: {exc}") from None
    if project is None:
        assert scanner.header is not None
        project = await _project_from_dsn(request, state, scanner.header)
        reservation.bind(project.id)
    # Joining makes a second copy for a moment: count it while it exists.
    await reservation.resize(2 * received)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    chunks.clear()
    await reservation.resize(received)
    return body, (decoder.encoding if decoder.compressed else ""), scanner, project


# -- authentication -----------------------------------------------------------------------------


def _dsn_key(header: dict[str, Any]) -> str | None:
    dsn = header.get("dsn")
    if not isinstance(dsn, str):
        return None
    try:
        return urlsplit(dsn).username or None
    except ValueError:
        return None


async def _authenticate(request: IngestRequest, state: CollectorState, key: str) -> Project:
    project = check_project(await state.projects.get(key), int(request.path_params["project_id"]))
    request.project = project
    return project


async def _project_from_dsn(request: IngestRequest, state: CollectorState, header: dict[str, Any]) -> Project:
    key = _dsn_key(header)
    if key is None:
        raise Rejection(
            401, "missing authentication: send X-Sentry-Auth, ?sentry_key= or a dsn envelope header"
        )
    return await _authenticate(request, state, key)


# -- the endpoints --------------------------------------------------------------------------------


#: Top-level keys that mark a JSON body as another vendor's payload (BugSnag's notify and sessions).
_FOREIGN_KEYS = frozenset({"apiKey", "notifier", "payloadVersion", "events", "sessionCounts"})
#: Keys of which a Sentry event has at least one (a JSON object with none of them is not an event).
_EVENT_KEYS = frozenset(
    {
        "event_id", "timestamp", "platform", "level", "message", "logentry", "exception", "threads",
        "stacktrace", "sdk", "release", "environment", "tags", "user", "request", "contexts",
        "extra", "fingerprint", "transaction", "logger", "server_name", "breadcrumbs", "culprit",
    }
)  # fmt: skip


def _not_sentry(data: dict[str, Any], what: str) -> str | None:
    """Why ``data`` (a JSON object posted as a Sentry ``what``) is not one, or None if it may be."""
    foreign = sorted(_FOREIGN_KEYS.intersection(data))
    if foreign and not _EVENT_KEYS.intersection(data):
        return (
            f"not a Sentry {what}: it looks like a BugSnag payload (has {', '.join(foreign)});"
            " BugSnag SDKs report to / and /sessions with Bugsnag-Api-Key"
        )
    if what == "event" and not _EVENT_KEYS.intersection(data):
        return "not a Sentry event: none of the fields of an event (exception, message, timestamp, ...)"
    return None


async def _ingest(
    request: IngestRequest, endpoint: str, reservation: Reservation
) -> tuple[dict[str, Any], dict[str, str]]:
    state: CollectorState = request.app.state.collector
    limits = state.config.limits
    # The key is checked before any of the body is read: a request with a wrong key costs nothing.
    key = sentry_key(request)
    project = await _authenticate(request, state, key) if key else None
    if project is not None:
        reservation.bind(project.id)
    if endpoint == "store":
        if project is None:
            raise Rejection(401, "missing authentication: send X-Sentry-Auth or ?sentry_key=")
        body = await read_body(
            request, reservation, max_compressed=limits.max_store_compressed, max_size=limits.max_event_size
        )
        try:
            event = _json.loads(body)
        except ValueError as exc:
            raise Rejection(400, f"malformed event: not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise Rejection(400, "malformed event: must be a JSON object")
        reason = _not_sentry(event, "event")
        if reason:
            raise Rejection(400, reason)
        event_id = normalize_event_id(event.get("event_id")) or uuid.uuid4().hex
        header = {"event_id": event_id}
        body = b"%s\n%s\n%s\n" % (
            json.dumps(header).encode(),
            json.dumps({"type": "event", "length": len(body)}).encode(),
            body,
        )
        kind = "envelope"
        quota_items, attachments, attachment_bytes = 1, 0, 0
        envelope_event_id: str | None = event_id
        items: list[tuple[str, int]] = []
    else:
        body, encoding, scanner, project = await read_envelope(request, state, reservation, project)
        assert scanner.header is not None
        envelope_event_id = normalize_event_id(scanner.header.get("event_id"))
        quota_items, attachments = scanner.quota_items, scanner.attachments
        attachment_bytes = scanner.attachment_bytes
        # A compressed body is queued as it came: a quarter of the bytes to write and fsync.
        # The digest decompresses it again; it was checked against the limits above.
        kind = f"envelope:{encoding}" if encoding else "envelope"
        if scanner.items == 0:
            # A JSON document on one line parses as an envelope header with no items: say what it is.
            reason = _not_sentry(scanner.header, "envelope")
            raise Rejection(400, reason or "not a Sentry envelope: it has no items")
        items = scanner.kinds

    check_quota(state, project, quota_items, "error", _RATE_CATEGORIES)
    answer_headers: dict[str, str] = {}
    refused = item_types.refused_categories(kind_ for kind_, _n in items)
    if refused:
        answer_headers["X-Sentry-Rate-Limits"] = item_types.refusal_header(refused) or ""
        if all((t := item_types.lookup(kind_)) is not None and not t.stored for kind_, _n in items):
            # Nothing in it is stored: count it here rather than queue bytes only to count them.
            for kind_, n in items:
                state.writer.count(project.id, kind_, item_types.NOT_STORED, n)
            return {"id": envelope_event_id}, answer_headers
    # Without attachments the budget has nothing to refuse (and looking it up costs a request).
    refusal = await state.attachment_quota.check(project, body, kind, attachments) if attachments else None
    if refusal is not None:
        raise Rejection(429, refusal.message, refusal.headers)
    check_backlog(state, project, sentry_headers=True)
    await queue(state, request, project, kind, body, "envelope")
    if attachment_bytes:
        state.attachment_quota.accepted(project.id, attachment_bytes)
    return {"id": envelope_event_id}, answer_headers


#: Counter reason of each refusal that is counted against the (authenticated) project.
_REASONS = {400: "invalid", 413: "too_large", 415: "invalid"}


class IngestEndpoint:
    """The ASGI app of one ingest endpoint: ``envelope`` or ``store``."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = IngestRequest(scope, receive)
        if request.method == "OPTIONS":
            requested = request.headers.get("access-control-request-headers")
            headers = {
                **CORS,
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": requested
                or "x-sentry-auth, x-requested-with, content-type, content-encoding, authorization",
                "Access-Control-Max-Age": "3600",
            }
            await send_response(send, 200, b"", headers, None)
            return
        state: CollectorState = request.app.state.collector
        limiter = state.refusal_limiter
        if limiter.blocked(request.client_host):
            # Refused too often (refusal_limit.py): answer before reading or parsing anything.
            state.refusals.add("client_blocked")
            retry = str(limiter.retry_after(request.client_host))
            message = "too many refused requests from this address; retry later"
            await respond(send, 429, {"detail": message}, {"Retry-After": retry, "Connection": "close"})
            return
        reservation = state.budget.reservation()
        try:
            result, answer_headers = await _ingest(request, self.endpoint, reservation)
        except (Rejection, BudgetExhausted) as exc:
            if isinstance(exc, BudgetExhausted):
                if request.project is not None:
                    state.writer.count(request.project.id, "envelope", "over_capacity")
                else:
                    state.refusals.add("over_capacity")
                exc = Rejection(503, str(exc), {"Retry-After": "2"})
            # Only what a key holder sent counts against a project: junk from anyone else must not
            # move its counters.
            if request.project is not None and exc.status in _REASONS:
                state.writer.count(request.project.id, "envelope", _REASONS[exc.status])
            if exc.status < 500:
                # The client's doing (a 503 is the server's): a client that loops on refusals is
                # held off (refusal_limit.py); an SDK that backs off never is.
                limiter.charge(request.client_host)
            headers = exc.headers
            if not request.body_done:
                # The rest of the body will not be read: close rather than parse it as a request.
                headers = {**headers, "Connection": "close"}
            await respond(send, exc.status, {"detail": exc.message}, headers)
            return
        finally:
            reservation.release()
        await respond(send, 200, result, answer_headers)


#: ``POST /api/{project_id}/envelope/``: a Sentry envelope (any items).
envelope_endpoint = IngestEndpoint("envelope")
#: ``POST /api/{project_id}/store/``: one JSON event (the legacy protocol).
store_endpoint = IngestEndpoint("store")


def routes() -> list[Route]:
    """The ingest routes (with and without the trailing slash SDKs use)."""
    methods = ["POST", "OPTIONS"]
    # ``:id`` (access.IdConvertor): at most 19 digits, so a 5000-digit id is a 404, not a 500.
    return [
        Route("/api/{project_id:id}/envelope/", envelope_endpoint, methods=methods),
        Route("/api/{project_id:id}/envelope", envelope_endpoint, methods=methods),
        Route("/api/{project_id:id}/store/", store_endpoint, methods=methods),
        Route("/api/{project_id:id}/store", store_endpoint, methods=methods),
    ]
