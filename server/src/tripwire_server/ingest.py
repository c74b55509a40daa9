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
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _json, access, item_types  # noqa: F401 - access registers the ``:id`` route convertor
from .bodies import DecodeError, Decoder, UnsupportedEncoding
from .bodies import decode_stored as decode_stored  # where the digest has always imported it from
from .budget import BudgetExhausted, Reservation
from .envelope import EnvelopeError, EnvelopeScanner, ItemTooLarge
from .intake import IntakeUnavailable
from .normalize import normalize_event_id
from .store.base import IntakeRow, Project

if TYPE_CHECKING:
    from .app import CollectorState

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

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "x-sentry-error, x-sentry-rate-limits, retry-after",
}


class Rejection(Exception):
    """An ingest request refused with ``status`` and a human ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def header_safe(text: str, limit: int = 200) -> str:
    """``text`` fit for an HTTP header value: printable ASCII only (no CR/LF injection), cut."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])


class _Request:
    """The little of a request the ingest path needs, read straight from the ASGI scope.

    Ingest is the hot path: a raw ASGI handler skips building Starlette Request/Response objects,
    which costs more than the rest of the handler's own work.
    """

    __slots__ = (
        "_receive",
        "app",
        "body_done",
        "client_host",
        "headers",
        "method",
        "path_params",
        "project",
        "scope",
    )

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        # ASGI servers lower-case header names.
        self.headers: dict[str, str] = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.app = scope["app"]
        self.path_params = scope["path_params"]
        self.method = scope["method"]
        client = scope.get("client")
        self.client_host: str | None = client[0] if client else None
        #: The project whose key this request carries, once checked.
        self.project: Project | None = None
        self.body_done = False

    def query_param(self, name: str) -> str | None:
        query = self.scope.get("query_string", b"")
        if not query:
            return None
        values = parse_qs(query.decode("latin-1")).get(name)
        return values[0] if values else None

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.body_done = True  # nothing more will come
                raise Rejection(400, "the client went away before sending the whole body")
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                self.body_done = True
                return


async def _send_response(
    send: Send, status: int, body: bytes, headers: dict[str, str], media_type: str | None
) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    if media_type:
        raw.append((b"content-type", media_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _respond(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    all_headers = dict(_CORS)
    if headers:
        all_headers.update(headers)
    if status >= 400 and "detail" in body:
        # Header values must be latin-1: keep the reason short and plain.
        all_headers["X-Sentry-Error"] = header_safe(str(body["detail"]))
    await _send_response(send, status, _json.dumps(body), all_headers, "application/json")


# -- request body: streamed, decompressed in bounded steps, capped --------------------------------

#: Largest piece of decompressed output produced at once; the event loop gets a turn between pieces.
INFLATE_STEP = 64 * 1024
#: Decompressed bytes below which the inflate ratio is not checked (small bodies vary too much).
RATIO_FLOOR = 256 * 1024


def _check_ratio(produced: int, decoder: Decoder, limit: int) -> None:
    if limit > 0 and produced > RATIO_FLOOR and produced > limit * decoder.consumed:
        raise Rejection(
            413,
            f"decompressed body is over {limit} times its compressed size (a decompression bomb?);"
            " send it uncompressed",
        )


def _declared_length(request: _Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is None:
        return
    try:
        declared = int(length)
    except ValueError:
        raise Rejection(400, "invalid Content-Length") from None
    if declared > limit:
        raise Rejection(413, f"body of {length} bytes is over the {limit} byte limit")


def _decoder(request: _Request) -> Decoder:
    try:
        return Decoder(request.headers.get("content-encoding", "").strip().lower())
    except UnsupportedEncoding as exc:
        raise Rejection(415, str(exc)) from None


async def read_body(
    request: _Request, reservation: Reservation, *, max_compressed: int, max_size: int
) -> bytes:
    """The decompressed body of a small request (``/store/``), refused with 413 past a limit."""
    max_ratio = request.app.state.collector.config.limits.max_inflate_ratio
    _declared_length(request, max_compressed)
    decoder = _decoder(request)
    received = 0
    out = bytearray()
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_compressed:
                raise Rejection(413, f"body is over the {max_compressed} byte limit")
            for piece in decoder.inflate(chunk, INFLATE_STEP):
                if len(out) + len(piece) > max_size:
                    raise Rejection(413, f"decompressed body is over the {max_size} byte limit")
                out += piece
                _check_ratio(len(out), decoder, max_ratio)
                await reservation.resize(len(out))
        if received:
            decoder.finish()
    except DecodeError as exc:
        raise Rejection(400, str(exc)) from None
    return bytes(out)


async def read_envelope(
    request: _Request, state: CollectorState, reservation: Reservation, project: Project | None
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
    _declared_length(request, max_compressed)
    decoder = _decoder(request)
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
                _check_ratio(produced, decoder, limits.max_inflate_ratio)
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


def _auth_key(request: _Request) -> str | None:
    for header in ("x-sentry-auth", "authorization"):
        value = request.headers.get(header)
        if value and value.lstrip().lower().startswith("sentry "):
            for part in value.strip()[7:].split(","):
                name, _, val = part.strip().partition("=")
                if name.strip() == "sentry_key" and val.strip():
                    return val.strip()
    return request.query_param("sentry_key") or None


def _dsn_key(header: dict[str, Any]) -> str | None:
    dsn = header.get("dsn")
    if not isinstance(dsn, str):
        return None
    try:
        return urlsplit(dsn).username or None
    except ValueError:
        return None


class ProjectCache:
    """DSN public key -> project, for every key that is not revoked (a project may have several
    while a key is being rotated).

    Reloaded from the store on a miss (at most once a second) and whenever it is older than
    ``max_age``, so projects and keys created by the CLI or another process are found without a
    restart, and a key revoked elsewhere stops ingesting within ``max_age`` seconds. A revocation
    through this process's API or dashboard calls :meth:`invalidate`: refused at once.
    """

    #: Seconds a revoked key may still be accepted by a collector that did not revoke it.
    max_age = 5.0

    def __init__(self, state: CollectorState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.clock = clock
        self._by_key: dict[str, Project] = {}
        self._loaded = -math.inf
        self._lock = threading.Lock()
        self._reloading: asyncio.Task[None] | None = None

    def _reload(self) -> None:
        store = self.state.store
        projects = {p.id: p for p in store.list_projects()}
        keys = store.list_project_keys()
        with self._lock:
            self._by_key = {k.public_key: projects[k.project_id] for k in keys if k.project_id in projects}
            self._loaded = self.clock()

    async def get(self, key: str) -> Project | None:
        project = self._by_key.get(key)
        age = self.clock() - self._loaded
        if (project is None and age > 1.0) or age > self.max_age:
            # One reload at a time, however many requests with unknown keys arrive meanwhile
            # (a flood of made-up keys must not become a flood of queries); shielded, so that a
            # client going away does not cancel it for the others.
            if self._reloading is None or self._reloading.done():
                self._reloading = asyncio.get_running_loop().create_task(self._reload_async())
            await asyncio.shield(self._reloading)
            project = self._by_key.get(key)
        return project

    async def _reload_async(self) -> None:
        await anyio.to_thread.run_sync(self._reload)

    def invalidate(self) -> None:
        self._loaded = -math.inf


def _check_project(project: Project | None, project_id: int) -> Project:
    if project is None:
        raise Rejection(403, "unknown DSN public key")
    if project.id != project_id:
        raise Rejection(403, f"the DSN key does not belong to project {project_id}")
    return project


async def _authenticate(request: _Request, state: CollectorState, key: str) -> Project:
    project = _check_project(await state.projects.get(key), int(request.path_params["project_id"]))
    request.project = project
    return project


async def _project_from_dsn(request: _Request, state: CollectorState, header: dict[str, Any]) -> Project:
    key = _dsn_key(header)
    if key is None:
        raise Rejection(
            401, "missing authentication: send X-Sentry-Auth, ?sentry_key= or a dsn envelope header"
        )
    return await _authenticate(request, state, key)


# -- quotas ---------------------------------------------------------------------------------------


class Quotas:
    """Per-project fixed one-minute windows of quota items, kept in this process."""

    def __init__(self) -> None:
        self._windows: dict[int, tuple[int, int]] = {}

    def take(self, project_id: int, limit: int, n: int, now: float) -> int | None:
        """Count ``n`` items; return None if allowed, else the seconds until the window resets."""
        if limit <= 0 or n <= 0:
            return None
        minute = int(now // 60)
        start, used = self._windows.get(project_id, (minute, 0))
        if start != minute:
            start, used = minute, 0
        if used + n > limit:
            self._windows[project_id] = (start, used)
            return max(1, math.ceil((start + 1) * 60 - now))
        self._windows[project_id] = (start, used + n)
        return None


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
    request: _Request, endpoint: str, reservation: Reservation
) -> tuple[dict[str, Any], dict[str, str]]:
    state: CollectorState = request.app.state.collector
    limits = state.config.limits
    # The key is checked before any of the body is read: a request with a wrong key costs nothing.
    key = _auth_key(request)
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

    quota = (
        project.quota_per_minute if project.quota_per_minute is not None else state.config.quota_per_minute
    )
    retry = state.quotas.take(project.id, quota, quota_items, time.time())
    if retry is not None:
        state.writer.count(project.id, "error", "rate_limited", quota_items)
        raise Rejection(
            429,
            f"project quota of {quota} events per minute exceeded",
            {"Retry-After": str(retry), "X-Sentry-Rate-Limits": f"{retry}:{_RATE_CATEGORIES}:project:quota"},
        )
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
    if state.writer.backlog + state.writer.in_flight >= state.config.max_backlog:
        state.writer.count(project.id, "envelope", "backlog_full")
        raise Rejection(
            429,
            "the collector is behind on digesting; retry later",
            {"Retry-After": "10", "X-Sentry-Rate-Limits": "10::organization:backlog"},
        )
    try:
        await state.writer.submit(IntakeRow(project.id, time.time(), kind, body, request.client_host))
    except IntakeUnavailable as exc:
        raise Rejection(503, f"could not store the envelope: {exc}", {"Retry-After": "5"}) from None
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
        request = _Request(scope, receive)
        if request.method == "OPTIONS":
            requested = request.headers.get("access-control-request-headers")
            headers = {
                **_CORS,
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": requested
                or "x-sentry-auth, x-requested-with, content-type, content-encoding, authorization",
                "Access-Control-Max-Age": "3600",
            }
            await _send_response(send, 200, b"", headers, None)
            return
        state: CollectorState = request.app.state.collector
        limiter = state.refusal_limiter
        if limiter.blocked(request.client_host):
            # Refused too often (refusal_limit.py): answer before reading or parsing anything.
            state.refusals.add("client_blocked")
            retry = str(limiter.retry_after(request.client_host))
            message = "too many refused requests from this address; retry later"
            await _respond(send, 429, {"detail": message}, {"Retry-After": retry, "Connection": "close"})
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
            await _respond(send, exc.status, {"detail": exc.message}, headers)
            return
        finally:
            reservation.release()
        await _respond(send, 200, result, answer_headers)


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
