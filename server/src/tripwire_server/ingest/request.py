"""What every ingest endpoint (Sentry, BugSnag, OTLP) does with a request before and after its
own protocol: the request as read from the ASGI scope, refusals, the key in Sentry's auth header,
the body (streamed, decompressed in bounded steps, capped), the per-minute quota, the backlog check
and the hand-over to the durable ingest queue (:mod:`..queue_writer`).

Ingest is the hot path: the endpoints are raw ASGI apps, so nothing here builds Starlette
Request/Response objects.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from .. import _json
from ..bodies import DecodeError, Decoder, UnsupportedEncoding
from ..budget import Reservation
from ..queue_writer import IntakeUnavailable
from ..store.base import IntakeRow, Project

if TYPE_CHECKING:
    from ..state import CollectorState

CORS = {
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


class IngestRequest:
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
        """The first value of query parameter ``name``, or None."""
        query = self.scope.get("query_string", b"")
        if not query:
            return None
        values = parse_qs(query.decode("latin-1")).get(name)
        return values[0] if values else None

    async def stream(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive; a client that goes away is a 400."""
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


async def send_response(
    send: Send, status: int, body: bytes, headers: dict[str, str], media_type: str | None
) -> None:
    """Send a whole response (raw ASGI: no Starlette Response object on the hot path)."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    if media_type:
        raw.append((b"content-type", media_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def respond(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Send ``body`` as JSON with the CORS headers; a refusal's ``detail`` also goes in
    ``X-Sentry-Error``."""
    all_headers = dict(CORS)
    if headers:
        all_headers.update(headers)
    if status >= 400 and "detail" in body:
        # Header values must be latin-1: keep the reason short and plain.
        all_headers["X-Sentry-Error"] = header_safe(str(body["detail"]))
    await send_response(send, status, _json.dumps(body), all_headers, "application/json")


# -- request body: streamed, decompressed in bounded steps, capped --------------------------------

#: Largest piece of decompressed output produced at once; the event loop gets a turn between pieces.
INFLATE_STEP = 64 * 1024
#: Decompressed bytes below which the inflate ratio is not checked (small bodies vary too much).
RATIO_FLOOR = 256 * 1024


def check_ratio(produced: int, decoder: Decoder, limit: int) -> None:
    """Refuse (413) a body that inflates to more than ``limit`` times what was received."""
    if limit > 0 and produced > RATIO_FLOOR and produced > limit * decoder.consumed:
        raise Rejection(
            413,
            f"decompressed body is over {limit} times its compressed size (a decompression bomb?);"
            " send it uncompressed",
        )


def declared_length(request: IngestRequest, limit: int) -> None:
    """Refuse a body whose ``Content-Length`` is invalid (400) or over ``limit`` (413) before reading it."""
    length = request.headers.get("content-length")
    if length is None:
        return
    try:
        declared = int(length)
    except ValueError:
        raise Rejection(400, "invalid Content-Length") from None
    if declared > limit:
        raise Rejection(413, f"body of {length} bytes is over the {limit} byte limit")


def decoder_of(request: IngestRequest) -> Decoder:
    """The decompressor of the request's ``Content-Encoding``, or 415."""
    try:
        return Decoder(request.headers.get("content-encoding", "").strip().lower())
    except UnsupportedEncoding as exc:
        raise Rejection(415, str(exc)) from None


async def read_body(
    request: IngestRequest, reservation: Reservation, *, max_compressed: int, max_size: int
) -> bytes:
    """The decompressed body of a small request (``/store/``), refused with 413 past a limit."""
    max_ratio = request.app.state.collector.config.limits.max_inflate_ratio
    declared_length(request, max_compressed)
    decoder = decoder_of(request)
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
                check_ratio(len(out), decoder, max_ratio)
                await reservation.resize(len(out))
        if received:
            decoder.finish()
    except DecodeError as exc:
        raise Rejection(400, str(exc)) from None
    return bytes(out)


# -- authentication ---------------------------------------------------------------------------------


def sentry_key(request: IngestRequest) -> str | None:
    """The DSN public key from ``X-Sentry-Auth``/``Authorization: Sentry ...`` or ``?sentry_key=``."""
    for header in ("x-sentry-auth", "authorization"):
        value = request.headers.get(header)
        if value and value.lstrip().lower().startswith("sentry "):
            for part in value.strip()[7:].split(","):
                name, _, val = part.strip().partition("=")
                if name.strip() == "sentry_key" and val.strip():
                    return val.strip()
    return request.query_param("sentry_key") or None


def check_project(project: Project | None, project_id: int) -> Project:
    """``project`` if it is the one ``project_id`` names (the id in the URL), else 403."""
    if project is None:
        raise Rejection(403, "unknown DSN public key")
    if project.id != project_id:
        raise Rejection(403, f"the DSN key does not belong to project {project_id}")
    return project


# -- quota, backlog and the queue: the same for every protocol ---------------------------------------


def check_quota(
    state: CollectorState, project: Project, items: int, category: str, rate_limits: str | None = None
) -> None:
    """Count ``items`` against the project's per-minute quota, or refuse with 429.

    A refusal is counted as ``rate_limited`` in ``category``; ``rate_limits`` (Sentry's
    ``X-Sentry-Rate-Limits`` categories) adds that header for Sentry SDKs.
    """
    quota = project.quota_per_minute
    if quota is None:
        quota = state.config.quota_per_minute
    retry = state.quotas.take(project.id, quota, items, time.time())
    if retry is None:
        return
    state.writer.count(project.id, category, "rate_limited", items)
    headers = {"Retry-After": str(retry)}
    if rate_limits is not None:
        headers["X-Sentry-Rate-Limits"] = f"{retry}:{rate_limits}:project:quota"
    raise Rejection(429, f"project quota of {quota} events per minute exceeded", headers)


def check_backlog(state: CollectorState, project: Project, *, sentry_headers: bool = False) -> None:
    """Refuse with 429 while the digest is too far behind (counted as ``backlog_full``)."""
    if state.writer.backlog + state.writer.in_flight < state.config.max_backlog:
        return
    state.writer.count(project.id, "envelope", "backlog_full")
    headers = {"Retry-After": "10"}
    if sentry_headers:
        headers["X-Sentry-Rate-Limits"] = "10::organization:backlog"
    raise Rejection(429, "the collector is behind on digesting; retry later", headers)


async def queue(
    state: CollectorState, request: IngestRequest, project: Project, kind: str, body: bytes, what: str
) -> None:
    """Commit ``body`` to the durable ingest queue (returns once committed), or refuse with 503."""
    try:
        await state.writer.submit(IntakeRow(project.id, time.time(), kind, body, request.client_host))
    except IntakeUnavailable as exc:
        raise Rejection(503, f"could not store the {what}: {exc}", {"Retry-After": "5"}) from None
