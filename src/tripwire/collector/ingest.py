"""The Sentry ingest endpoints: ``POST /api/{project_id}/envelope/`` and ``/store/``.

A request is answered 200 only once its envelope is committed to the durable ingest queue; the
digest happens later. Everything else is refused early and explicitly: 401/403 for keys, 400 for
malformed envelopes (with the reason), 413 for oversized bodies or items (including decompression
bombs), 415 for unknown encodings, 429 with ``Retry-After`` and ``X-Sentry-Rate-Limits`` for
quotas, 503 when the queue cannot be written.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
import brotli
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _json, access  # noqa: F401 - access registers the ``:id`` route convertor
from .envelope import EnvelopeError, parse_envelope
from .intake import IntakeUnavailable
from .normalize import normalize_event_id
from .store.base import IntakeRow, Project

if TYPE_CHECKING:
    from .app import CollectorState

#: Item types that count against the per-project event quota (Sentry data categories in the header).
QUOTA_ITEMS = {"event": "error", "transaction": "transaction", "raw_security": "security"}
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

    __slots__ = ("_receive", "app", "client_host", "headers", "method", "path_params", "scope")

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
                raise Rejection(400, "the client went away before sending the whole body")
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
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


# -- request body: streamed, decompressed, capped ------------------------------------------------


class _Decoder:
    """Incremental decompression that never produces more than it is allowed to."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib: Any = None
        self._brotli: Any = None
        if encoding == "gzip" or encoding == "x-gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "br":
            self._brotli = brotli.Decompressor()
        elif encoding not in ("", "identity", "deflate"):
            raise Rejection(415, f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or br")

    def feed(self, data: bytes, room: int) -> bytes:
        """Decompress ``data``; stop after ``room`` bytes of output (the caller then refuses)."""
        if self.encoding == "deflate" and self._zlib is None:
            # "deflate" is zlib-wrapped per RFC 9110, but some clients send raw deflate.
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        try:
            if self._zlib is not None:
                out = self._zlib.decompress(data, room + 1)
                # Output stopped at the cap with input left over: that is a bomb, stop here.
                return bytes(out)
            if self._brotli is not None:
                out = self._brotli.process(data, output_buffer_limit=room + 1)
                return bytes(out)
        except (zlib.error, brotli.error) as exc:
            raise Rejection(400, f"could not decompress the {self.encoding} body: {exc}") from None
        return data

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof and self.encoding != "deflate":
            raise Rejection(400, f"truncated {self.encoding} body")
        if self._brotli is not None and not self._brotli.is_finished():
            raise Rejection(400, "truncated br body")


def decode_stored(body: bytes, encoding: str) -> bytes:
    """Decompress a queued body that was already checked against the limits at ingest."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body)
    if encoding == "deflate":
        wrapped = len(body) >= 2 and (body[0] & 0x0F) == 8 and ((body[0] << 8) | body[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS).decompress(body)
    if encoding == "br":
        return bytes(brotli.decompress(body))
    return body


async def read_body(request: _Request, *, max_compressed: int, max_size: int) -> tuple[bytes, bytes, str]:
    """``(decompressed, as received, encoding)``, refusing with 413 as soon as a limit is passed."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > max_compressed:
                raise Rejection(413, f"body of {length} bytes is over the {max_compressed} byte limit")
        except ValueError:
            raise Rejection(400, "invalid Content-Length") from None
    encoding = request.headers.get("content-encoding", "").strip().lower()
    decoder = _Decoder(encoding)
    received = 0
    out = bytearray()
    raw = bytearray()
    compressed = encoding not in ("", "identity")
    async for chunk in request.stream():
        if not chunk:
            continue
        received += len(chunk)
        if compressed:
            raw += chunk
        if received > max_compressed:
            raise Rejection(413, f"body is over the {max_compressed} byte limit")
        out += decoder.feed(chunk, max_size - len(out))
        if len(out) > max_size:
            raise Rejection(413, f"decompressed body is over the {max_size} byte limit")
        if decoder._zlib is not None:
            # Drain input the capped call left unconsumed, still under the cap.
            while decoder._zlib.unconsumed_tail:
                out += decoder.feed(decoder._zlib.unconsumed_tail, max_size - len(out))
                if len(out) > max_size:
                    raise Rejection(413, f"decompressed body is over the {max_size} byte limit")
        elif decoder._brotli is not None:
            while not decoder._brotli.can_accept_more_data():
                out += decoder.feed(b"", max_size - len(out))
                if len(out) > max_size:
                    raise Rejection(413, f"decompressed body is over the {max_size} byte limit")
    if received:
        decoder.finish()
    decoded = bytes(out)
    return decoded, (bytes(raw) if compressed else decoded), (encoding if compressed else "")


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
            await anyio.to_thread.run_sync(self._reload)
            project = self._by_key.get(key)
        return project

    def invalidate(self) -> None:
        self._loaded = -math.inf


def _check_project(project: Project | None, project_id: int) -> Project:
    if project is None:
        raise Rejection(403, "unknown DSN public key")
    if project.id != project_id:
        raise Rejection(403, f"the DSN key does not belong to project {project_id}")
    return project


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


def _validate(body: bytes, state: CollectorState) -> tuple[str | None, dict[str, Any], int]:
    """Check an envelope at the door: returns (event_id, header, quota item count)."""
    limits = state.config.limits
    try:
        header, items = parse_envelope(body, max_header=limits.max_header_size, max_items=limits.max_items)
    except EnvelopeError as exc:
        raise Rejection(400, f"malformed envelope: {exc}") from None
    quota_items = 0
    for item in items:
        if item.type in QUOTA_ITEMS:
            quota_items += 1
            if len(item.payload) > limits.max_event_size:
                raise Rejection(
                    413,
                    f"{item.type} item of {len(item.payload)} bytes is over the"
                    f" {limits.max_event_size} byte limit",
                )
            if item.type == "event":
                try:
                    payload = _json.loads(item.payload)
                except ValueError as exc:
                    raise Rejection(400, f"malformed envelope: event payload is not JSON: {exc}") from None
                if not isinstance(payload, dict):
                    raise Rejection(400, "malformed envelope: event payload must be a JSON object")
                header.setdefault("event_id", payload.get("event_id"))
        elif item.type == "attachment" and len(item.payload) > limits.max_attachment_size:
            raise Rejection(
                413,
                f"attachment of {len(item.payload)} bytes is over the"
                f" {limits.max_attachment_size} byte limit",
            )
    return normalize_event_id(header.get("event_id")), header, quota_items


async def _ingest(request: _Request, endpoint: str) -> dict[str, Any]:
    state: CollectorState = request.app.state.collector
    kind = "envelope"
    limits = state.config.limits
    project_id = int(request.path_params["project_id"])
    key = _auth_key(request)
    project = _check_project(await state.projects.get(key), project_id) if key else None
    if endpoint == "store":
        body, _raw, _encoding = await read_body(
            request, max_compressed=limits.max_store_compressed, max_size=limits.max_event_size
        )
        try:
            event = _json.loads(body)
        except ValueError as exc:
            raise Rejection(400, f"malformed event: not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise Rejection(400, "malformed event: must be a JSON object")
        event_id = normalize_event_id(event.get("event_id")) or uuid.uuid4().hex
        header = {"event_id": event_id}
        body = b"%s\n%s\n%s\n" % (
            json.dumps(header).encode(),
            json.dumps({"type": "event", "length": len(body)}).encode(),
            body,
        )
        quota_items = 1
        envelope_event_id: str | None = event_id
    else:
        body, raw, encoding = await read_body(
            request, max_compressed=limits.max_envelope_compressed, max_size=limits.max_envelope_size
        )
        envelope_event_id, header, quota_items = _validate(body, state)
        if encoding:
            # Queue the body as it came (compressed): a quarter of the bytes to write and fsync.
            # The digest decompresses it again; it was checked against the limits above.
            body, kind = raw, f"envelope:{encoding}"
        if project is None:
            dsn_key = _dsn_key(header)
            if dsn_key is None:
                raise Rejection(
                    401, "missing authentication: send X-Sentry-Auth, ?sentry_key= or a dsn envelope header"
                )
            project = _check_project(await state.projects.get(dsn_key), project_id)
    if project is None:
        raise Rejection(401, "missing authentication: send X-Sentry-Auth or ?sentry_key=")

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
    refusal = await state.attachment_quota.check(project, body, kind)
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
    return {"id": envelope_event_id}


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
        try:
            result = await _ingest(request, self.endpoint)
        except Rejection as exc:
            state: CollectorState = request.app.state.collector
            if exc.status in (400, 413, 415):
                project_id = int(request.path_params["project_id"])
                if any(p.id == project_id for p in state.projects._by_key.values()):
                    reason = {400: "invalid", 413: "too_large", 415: "invalid"}[exc.status]
                    state.writer.count(project_id, "envelope", reason)
            await _respond(send, exc.status, {"detail": exc.message}, exc.headers)
            return
        await _respond(send, 200, result)


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
