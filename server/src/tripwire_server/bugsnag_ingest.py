"""The BugSnag protocol: notify (``POST /``, payload version 4) and sessions (``POST /sessions``).

A BugSnag notifier in any language reports to ``tripwire serve`` when its ``endpoints`` setting
points at the collector (``notify: http://host:port``, ``sessions: http://host:port/sessions``), as
with a self-hosted BugSnag; the project's DSN public key is its API key (``Bugsnag-Api-Key``).

Ingest checks the request and queues the body as it came (kind ``bugsnag_notify`` or
``bugsnag_sessions``), like an envelope; the digest turns it into Sentry-shaped events and
session counts (:func:`events_of`, :func:`session_counts_of`), so BugSnag reports land in the
same issues, grouping and release health as Sentry ones.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _json
from .budget import BudgetExhausted, Reservation
from .ingest import Rejection, _Request, _respond, _send_response, read_body
from .intake import IntakeUnavailable
from .normalize import parse_timestamp
from .store.base import IntakeRow

if TYPE_CHECKING:
    from .app import CollectorState

NOTIFY_KIND = "bugsnag_notify"
SESSIONS_KIND = "bugsnag_sessions"
#: Notify payload versions understood (notifiers send "4" or "4.0"; 5 is 4 plus fields we ignore).
PAYLOAD_VERSIONS = ("4", "5")
_SEVERITY = {"error": "error", "warning": "warning", "info": "info"}
_CORS_ALLOW = "Bugsnag-Api-Key, Bugsnag-Payload-Version, Bugsnag-Sent-At, Bugsnag-Integrity, Content-Type"


# -- the digest side: BugSnag payloads as Sentry events -------------------------------------------


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _frames(stacktrace: Any) -> list[dict[str, Any]]:
    """BugSnag frames (innermost first) as Sentry frames (outermost first)."""
    frames: list[dict[str, Any]] = []
    for f in stacktrace if isinstance(stacktrace, list) else []:
        if not isinstance(f, dict):
            continue
        frame: dict[str, Any] = {}
        if isinstance(f.get("file"), str):
            frame["filename"] = frame["abs_path"] = f["file"]
        if isinstance(f.get("method"), str):
            frame["function"] = f["method"]
        line = f.get("lineNumber")
        if isinstance(line, int) and not isinstance(line, bool):
            frame["lineno"] = line
        if isinstance(f.get("columnNumber"), int):
            frame["colno"] = f["columnNumber"]
        if isinstance(f.get("inProject"), bool):
            frame["in_app"] = f["inProject"]
        code = f.get("code")
        if isinstance(code, dict) and isinstance(line, int):
            lines = {int(k): v for k, v in code.items() if str(k).isdigit() and isinstance(v, str)}
            if line in lines:
                frame["context_line"] = lines[line]
                frame["pre_context"] = [lines[n] for n in sorted(lines) if n < line]
                frame["post_context"] = [lines[n] for n in sorted(lines) if n > line]
        frames.append(frame)
    frames.reverse()
    return frames


def _platform(event: dict[str, Any], notifier: dict[str, Any]) -> str:
    exceptions = event.get("exceptions")
    kind = exceptions[0].get("type") if isinstance(exceptions, list) and exceptions else None
    name = str(notifier.get("name") or "").lower()
    if kind == "browserjs" or "javascript" in name and "node" not in name:
        return "javascript"
    if kind == "nodejs" or "node" in name:
        return "node"
    if isinstance(kind, str) and kind:
        return kind
    return "other"


def to_sentry_event(event: dict[str, Any], notifier: dict[str, Any]) -> dict[str, Any]:
    """One BugSnag event (notify payload version 4) as a Sentry event payload."""
    out: dict[str, Any] = {"platform": _platform(event, notifier)}
    # BugSnag events have no id: a digest of the event itself, so a retried request dedupes.
    out["event_id"] = hashlib.sha256(_json.dumps(event)).hexdigest()[:32]
    unhandled = event.get("unhandled") is True
    values = []
    for exc in reversed(event.get("exceptions") or []):
        if not isinstance(exc, dict):
            continue
        value: dict[str, Any] = {
            "type": str(exc.get("errorClass") or "Error"),
            "value": str(exc.get("message") or ""),
            "mechanism": {"type": "bugsnag", "handled": not unhandled},
        }
        frames = _frames(exc.get("stacktrace"))
        if frames:
            value["stacktrace"] = {"frames": frames}
        values.append(value)
    if values:
        out["exception"] = {"values": values}
    out["level"] = _SEVERITY.get(str(event.get("severity")), "error")
    app = _obj(event.get("app"))
    if app.get("version"):
        out["release"] = str(app["version"])
    # Older notifiers (Python's) put releaseStage on the event rather than under app.
    stage = app.get("releaseStage") or event.get("releaseStage")
    if stage:
        out["environment"] = str(stage)
    device = _obj(event.get("device"))
    ts = parse_timestamp(device.get("time"))
    if ts is not None:
        out["timestamp"] = ts
    if device.get("hostname"):
        out["server_name"] = str(device["hostname"])
    contexts: dict[str, Any] = {}
    if device.get("osName"):
        contexts["os"] = {"type": "os", "name": device["osName"], "version": device.get("osVersion")}
    runtimes = device.get("runtimeVersions")
    if isinstance(runtimes, dict) and runtimes:
        name, version = next(iter(runtimes.items()))
        contexts["runtime"] = {"type": "runtime", "name": name, "version": str(version)}
    if contexts:
        out["contexts"] = contexts
    user = event.get("user")
    if isinstance(user, dict):
        mapped = {"id": user.get("id"), "email": user.get("email"), "username": user.get("name")}
        out["user"] = {k: v for k, v in mapped.items() if v is not None}
    if isinstance(event.get("context"), str):
        out["transaction"] = event["context"]
    if isinstance(event.get("groupingHash"), str) and event["groupingHash"]:
        out["fingerprint"] = [event["groupingHash"]]
    if isinstance(event.get("metaData"), dict):
        out["extra"] = event["metaData"]
    request = event.get("request")
    if isinstance(request, dict):
        out["request"] = {
            "url": request.get("url"),
            "method": request.get("httpMethod"),
            "headers": _obj(request.get("headers")),
        }
        if request.get("clientIp"):
            out.setdefault("user", {})["ip_address"] = request["clientIp"]
    crumbs = []
    for crumb in event.get("breadcrumbs") or []:
        if isinstance(crumb, dict):
            crumbs.append(
                {
                    "timestamp": parse_timestamp(crumb.get("timestamp")),
                    "message": crumb.get("name"),
                    "category": crumb.get("type"),
                    "data": crumb.get("metaData"),
                }
            )
    if crumbs:
        out["breadcrumbs"] = {"values": crumbs}
    out["sdk"] = {
        "name": str(notifier.get("name") or "bugsnag"),
        "version": str(notifier.get("version") or ""),
    }
    out["tags"] = {"bugsnag.severity_reason": str((event.get("severityReason") or {}).get("type") or "")}
    return out


def events_of(payload: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(BugSnag event, as a Sentry event)`` of a notify payload (ValueError if it is not one)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise ValueError("BugSnag notify payload without an events list")
    notifier = _obj(payload.get("notifier"))
    return [(e, to_sentry_event(e, notifier)) for e in payload["events"] if isinstance(e, dict)]


def session_outcome(event: dict[str, Any]) -> tuple[str, str, float, str] | None:
    """``(release, environment, session start, "crashed" | "errored")`` when this event is the first
    unhandled (or the first handled) error of its session, else None.

    BugSnag reports sessions as counts of starts only; an event names its session and how many
    handled/unhandled errors that session has had so far, so the first one decides its fate.
    """
    session = event.get("session")
    if not isinstance(session, dict):
        return None
    counts = _obj(session.get("events"))
    app = _obj(event.get("app"))
    started = parse_timestamp(session.get("startedAt"))
    if not app.get("version") or started is None:
        return None
    release = str(app["version"])
    env = str(app.get("releaseStage") or event.get("releaseStage") or "production")
    if event.get("unhandled") is True and counts.get("unhandled") == 1:
        return release, env, started, "crashed"
    if event.get("unhandled") is not True and counts.get("handled") == 1 and not counts.get("unhandled"):
        return release, env, started, "errored"
    return None


def session_counts_of(payload: Any) -> list[tuple[str, str, float, int]]:
    """``(release, environment, started, sessions started)`` of a sessions payload."""
    if not isinstance(payload, dict) or not isinstance(payload.get("sessionCounts"), list):
        raise ValueError("BugSnag sessions payload without sessionCounts")
    app = _obj(payload.get("app"))
    if not app.get("version"):
        raise ValueError("BugSnag sessions without app.version (a release)")
    release, env = str(app["version"]), str(app.get("releaseStage") or "production")
    out = []
    for count in payload["sessionCounts"]:
        if not isinstance(count, dict):
            continue
        started = parse_timestamp(count.get("startedAt"))
        n = count.get("sessionsStarted")
        if started is None or not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError("invalid sessionCounts entry")
        out.append((release, env, started, n))
    return out


# -- the ingest side ---------------------------------------------------------------------------------


class BugsnagEndpoint:
    """The ASGI app of ``POST /`` (notify) or ``POST /sessions``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _Request(scope, receive)
        if request.method == "OPTIONS":
            headers = {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": _CORS_ALLOW,
                "Access-Control-Max-Age": "3600",
            }
            await _send_response(send, 200, b"", headers, None)
            return
        state: CollectorState = request.app.state.collector
        reservation = state.budget.reservation()
        try:
            await self._ingest(request, reservation)
        except BudgetExhausted as exc:
            await _respond(send, 503, {"detail": str(exc)}, {"Retry-After": "2", "Connection": "close"})
            return
        except Rejection as exc:
            await _respond(send, exc.status, {"detail": exc.message}, exc.headers)
            return
        finally:
            reservation.release()
        await _respond(send, 202 if self.kind == SESSIONS_KIND else 200, {"status": "ok"})

    async def _ingest(self, request: _Request, reservation: Reservation) -> None:
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
        quota = (
            project.quota_per_minute
            if project.quota_per_minute is not None
            else state.config.quota_per_minute
        )
        retry = state.quotas.take(project.id, quota, quota_items, time.time())
        if retry is not None:
            state.writer.count(project.id, "error", "rate_limited", quota_items)
            raise Rejection(
                429, f"project quota of {quota} events per minute exceeded", {"Retry-After": str(retry)}
            )
        if state.writer.backlog + state.writer.in_flight >= state.config.max_backlog:
            state.writer.count(project.id, "envelope", "backlog_full")
            raise Rejection(429, "the collector is behind on digesting; retry later", {"Retry-After": "10"})
        try:
            row = IntakeRow(project.id, time.time(), self.kind, body, request.client_host)
            await state.writer.submit(row)
        except IntakeUnavailable as exc:
            raise Rejection(503, f"could not store the report: {exc}", {"Retry-After": "5"}) from None


def routes() -> list[Route]:
    """BugSnag's endpoints at the collector's root (POST only: ``GET /`` is the dashboard)."""
    methods = ["POST", "OPTIONS"]
    return [
        Route("/", BugsnagEndpoint(NOTIFY_KIND), methods=methods),
        Route("/sessions", BugsnagEndpoint(SESSIONS_KIND), methods=methods),
    ]
