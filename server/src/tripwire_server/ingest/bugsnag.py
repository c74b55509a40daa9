"""The BugSnag protocol: notify (``POST /``, payload version 4) and sessions (``POST /sessions``).

A BugSnag notifier in any language reports to ``tripwire serve`` when its ``endpoints`` setting
points at the collector (``notify: http://host:port``, ``sessions: http://host:port/sessions``), as
with a self-hosted BugSnag; the project's DSN public key is its API key (``Bugsnag-Api-Key``).

The body is checked and queued as it came, like an envelope; the digest converts it
(:mod:`..bugsnag`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import _json
from ..budget import BudgetExhausted, Reservation
from ..bugsnag import NOTIFY_KIND, SESSIONS_KIND
from .request import (
    IngestRequest,
    Rejection,
    check_backlog,
    check_quota,
    queue,
    read_body,
    respond,
    send_response,
)

if TYPE_CHECKING:
    from ..state import CollectorState

#: Notify payload versions understood (notifiers send "4" or "4.0"; 5 is 4 plus fields we ignore).
PAYLOAD_VERSIONS = ("4", "5")
_CORS_ALLOW = "Bugsnag-Api-Key, Bugsnag-Payload-Version, Bugsnag-Sent-At, Bugsnag-Integrity, Content-Type"


class BugsnagEndpoint:
    """The ASGI app of ``POST /`` (notify) or ``POST /sessions``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = IngestRequest(scope, receive)
        if request.method == "OPTIONS":
            headers = {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": _CORS_ALLOW,
                "Access-Control-Max-Age": "3600",
            }
            await send_response(send, 200, b"", headers, None)
            return
        state: CollectorState = request.app.state.collector
        reservation = state.budget.reservation()
        try:
            await self._ingest(request, reservation)
        except BudgetExhausted as exc:
            await respond(send, 503, {"detail": str(exc)}, {"Retry-After": "2", "Connection": "close"})
            return
        except Rejection as exc:
            await respond(send, exc.status, {"detail": exc.message}, exc.headers)
            return
        finally:
            reservation.release()
        await respond(send, 202 if self.kind == SESSIONS_KIND else 200, {"status": "ok"})

    async def _ingest(self, request: IngestRequest, reservation: Reservation) -> None:
        state: CollectorState = request.app.state.collector
        limits = state.config.limits
        key = request.headers.get("bugsnag-api-key") or request.query_param("apiKey")
        if not key:
            raise Rejection(401, "missing Bugsnag-Api-Key (the project's DSN public key)")
        project = await state.projects.get(key)
        if project is None:
            raise Rejection(403, "unknown Bugsnag-Api-Key")
        # One JSON document, bounded like a /store/ event (bytes in flight, inflated in steps);
        # BugSnag's SDKs trim their payloads to about 1 MB themselves.
        body = await read_body(
            request, reservation, max_compressed=limits.max_store_compressed, max_size=limits.max_event_size
        )
        try:
            payload = _json.loads(body)
        except ValueError as exc:
            raise Rejection(400, f"malformed BugSnag payload: not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise Rejection(400, "malformed BugSnag payload: must be a JSON object")
        quota_items = 0
        if self.kind == NOTIFY_KIND:
            version = request.headers.get("bugsnag-payload-version") or request.query_param("payloadVersion")
            version = version or "4"
            if version.split(".", 1)[0] not in PAYLOAD_VERSIONS:
                raise Rejection(400, f"unsupported Bugsnag-Payload-Version {version!r}: 4 is")
            events = payload.get("events")
            if not isinstance(events, list) or not events:
                raise Rejection(400, "malformed BugSnag notify payload: no events list")
            quota_items = len(events)
        elif not isinstance(payload.get("sessionCounts"), list):
            raise Rejection(400, "malformed BugSnag sessions payload: no sessionCounts list")
        check_quota(state, project, quota_items, "error")
        check_backlog(state, project)
        await queue(state, request, project, self.kind, body, "report")


def routes() -> list[Route]:
    """BugSnag's endpoints at the collector's root (POST only: ``GET /`` is the dashboard)."""
    methods = ["POST", "OPTIONS"]
    return [
        Route("/", BugsnagEndpoint(NOTIFY_KIND), methods=methods),
        Route("/sessions", BugsnagEndpoint(SESSIONS_KIND), methods=methods),
    ]
