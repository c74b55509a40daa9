"""BugSnag: the Error Reporting API (payload v4) and the Session Tracking API (payload 1.0).

Events are mapped from the Sentry-schema event the SDK builds: exceptions (raised first, each with
its frames innermost first, ``inProject`` from ``in_app`` and a ``code`` window from the source
context), severity and ``unhandled`` from the level and the mechanism, ``groupingHash`` from a custom
fingerprint, ``metaData`` tabs from contexts, extra and tags, the user, breadcrumbs, and a top-level
``request``. Endpoints are configurable for on-premise BugSnag.

>>> BugsnagReporter(api_key="0123456789abcdef0123456789abcdef", release_stage="staging")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
import socket
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._crumb_types import bugsnag_type
from .._exceptions import ConfigurationError
from .._log import logger
from .._types import Event, SessionBatch
from .._version import __version__
from .http import HttpReporter, Payload

if TYPE_CHECKING:
    from .._options import Options

NOTIFIER = {"name": "tripwire", "version": __version__, "url": "https://github.com/tripwire-dev/tripwire"}
PAYLOAD_VERSION = "4.0"
SESSION_PAYLOAD_VERSION = "1.0"

_SEVERITY = {"fatal": "error", "error": "error", "warning": "warning", "info": "info", "debug": "info"}
#: Breadcrumb names are summaries; this bound only keeps a runaway message from filling the payload.
MAX_CRUMB_NAME = 1024
#: Sentry's "the default grouping" fingerprint entry, in both spellings its documentation uses.
_DEFAULT_FINGERPRINT = frozenset({"{{ default }}", "{{default}}"})
# Event fields that are not metaData tabs of their own.
_SKIP_CONTEXTS = frozenset({"trace", "session"})


def sent_at() -> str:
    """UTC, milliseconds and ``Z``, as the API documents for ``Bugsnag-Sent-At``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(timestamp: Any) -> str | None:
    if isinstance(timestamp, (int, float)):
        moment = datetime.fromtimestamp(float(timestamp), timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(timestamp, str):
        return timestamp
    return None


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr).encode(
        "utf-8", "replace"
    )


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    lineno = frame.get("lineno")
    out: dict[str, Any] = {
        "file": frame.get("filename") or frame.get("abs_path") or "<unknown>",
        "lineNumber": lineno if isinstance(lineno, int) else 0,
        "method": frame.get("function") or "<module>",
        "inProject": bool(frame.get("in_app", False)),
    }
    if isinstance(frame.get("colno"), int):
        out["columnNumber"] = frame["colno"]
    context_line = frame.get("context_line")
    if isinstance(lineno, int) and context_line is not None:
        pre = list(frame.get("pre_context") or [])
        post = list(frame.get("post_context") or [])
        code: dict[str, str] = {}
        for offset, line in enumerate(pre):
            code[str(lineno - len(pre) + offset)] = line
        code[str(lineno)] = context_line
        for offset, line in enumerate(post):
            code[str(lineno + 1 + offset)] = line
        out["code"] = code
    return out


def _exceptions(event: Event) -> list[dict[str, Any]]:
    values = (event.get("exception") or {}).get("values") or []
    out = []
    # Sentry lists the chain oldest first; BugSnag wants the raised exception first.
    for value in reversed(values):
        module = value.get("module")
        error_class = str(value.get("type") or "Exception")
        if module and module not in ("builtins", "__main__"):
            error_class = f"{module}.{error_class}"
        frames = (value.get("stacktrace") or {}).get("frames") or []
        out.append(
            {
                "errorClass": error_class,
                "message": str(value.get("value") or ""),
                "type": "python",
                "stacktrace": [_frame(f) for f in reversed(frames)],
            }
        )
    if not out:
        # A message event: BugSnag needs an exception, and groups by its class. The class is the
        # template ("payment %s failed"), as the Sentry path groups, so one log call is one error
        # whatever its arguments; the formatted text is the message.
        logentry = event.get("logentry") or {}
        message = logentry.get("formatted") or logentry.get("message") or event.get("message") or ""
        template = logentry.get("message") or message
        out.append(
            {
                "errorClass": str(template)[:200] or "Message",
                "message": str(message),
                "type": "python",
                "stacktrace": [],
            }
        )
    return out


def _mechanism(event: Event) -> dict[str, Any]:
    values = (event.get("exception") or {}).get("values") or []
    for value in reversed(values):
        mechanism = value.get("mechanism")
        if isinstance(mechanism, dict):
            return mechanism
    return {}


def _severity_reason(event: Event, mechanism: dict[str, Any], unhandled: bool) -> dict[str, Any]:
    kind = str(mechanism.get("type") or "")
    if kind == "logging" or (not mechanism and event.get("logger")):
        return {"type": "log", "attributes": {"level": str(event.get("level", "error"))}}
    if unhandled:
        if kind in ("asgi", "starlette", "django", "wsgi", "litestar", "quart"):
            return {"type": "unhandledExceptionMiddleware", "attributes": {"framework": kind.upper()}}
        return {"type": "unhandledException"}
    if not event.get("exception"):
        return {"type": "userSpecifiedSeverity"}
    return {"type": "handledException"}


def _breadcrumbs(event: Event) -> list[dict[str, Any]]:
    crumbs = event.get("breadcrumbs") or {}
    values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    out = []
    for crumb in values or []:
        if not isinstance(crumb, dict):
            continue
        kind = str(crumb.get("type") or "default")
        category = str(crumb.get("category") or "")
        mapped = bugsnag_type(crumb)
        meta = dict(crumb.get("data") or {})
        if category:
            meta.setdefault("category", category)
        if crumb.get("level"):
            meta.setdefault("level", crumb["level"])
        out.append(
            {
                "timestamp": _iso(crumb.get("timestamp")) or sent_at(),
                "name": str(crumb.get("message") or category or kind)[:MAX_CRUMB_NAME],
                "type": mapped,
                "metaData": meta,
            }
        )
    return out


def _request(event: Event) -> dict[str, Any] | None:
    request = event.get("request")
    if not isinstance(request, dict) or not request:
        return None
    url = str(request.get("url") or "")
    if request.get("query_string"):
        url = f"{url}?{request['query_string']}"
    headers = dict(request.get("headers") or {})
    out: dict[str, Any] = {"url": url, "httpMethod": request.get("method"), "headers": headers}
    env = request.get("env") or {}
    ip = env.get("REMOTE_ADDR") or (event.get("user") or {}).get("ip_address")
    if ip:
        out["clientIp"] = ip
    referer = next((v for k, v in headers.items() if k.lower() == "referer"), None)
    if referer:
        out["referer"] = referer
    return out


def _user(user: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """BugSnag's user (id, email, name: the name, else the username) and the rest of the app's user
    for the ``user`` metadata tab, which BugSnag shows beside those fields: nothing set is dropped."""
    if not isinstance(user, dict) or not user:
        return {}, {}
    name_key = "name" if user.get("name") is not None else "username"
    known: dict[str, str] = {}
    for field, key in (("id", "id"), ("email", "email"), ("name", name_key)):
        if user.get(key) is not None:
            known[field] = str(user[key])
    taken = {"id", "email", name_key}
    return known, {k: v for k, v in user.items() if k not in taken}


class BugsnagReporter(HttpReporter):
    """Send to BugSnag (hosted or on-premise).

    Options: ``api_key`` (required), ``endpoint`` and ``sessions_endpoint`` (on-premise URLs),
    ``release_stage`` (default: the event's environment), ``app_version`` (default: the release),
    ``app_type``, and the HTTP options of :class:`~tripwire.reporters.http.HttpReporter`. Bodies are
    sent uncompressed unless ``compress=True`` (the hosted API does not document gzip).
    """

    name = "bugsnag"
    compress = False
    #: BugSnag's notifiers leave an "error" breadcrumb for every error reported; so does tripwire.
    error_breadcrumbs = True
    links_sessions = True

    def __init__(
        self,
        api_key: str,
        *,
        endpoint: str = "https://notify.bugsnag.com",
        sessions_endpoint: str = "https://sessions.bugsnag.com",
        release_stage: str | None = None,
        app_version: str | None = None,
        app_type: str | None = None,
        **http_options: Any,
    ) -> None:
        super().__init__(**http_options)
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigurationError(f"reporters[{self.name}].api_key: a BugSnag API key is required")
        for option, url in (("endpoint", endpoint), ("sessions_endpoint", sessions_endpoint)):
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"reporters[{self.name}].{option}: expected an http(s) URL, got {url!r}"
                )
        self.api_key = api_key.strip()
        self.endpoint = endpoint
        self.sessions_endpoint = sessions_endpoint
        self.release_stage = release_stage
        self.app_version = app_version
        self.default_release = app_version
        self.app_type = app_type
        self._device = {
            "hostname": socket.gethostname(),
            "osName": platform.system().lower(),
            "runtimeVersions": {"python": platform.python_version()},
        }

    def configure(self, options: Options) -> None:
        super().configure(options)
        if not options.release and not self.app_version:
            # BugSnag attributes sessions to an app version; without one there is nothing to send.
            logger.warning(
                "tripwire: BugSnag reporter without app_version and no release: release health is "
                "off (start_session() returns False, no session counts are sent); set app_version="
            )

    def spool_key(self) -> str:
        import hashlib

        digest = hashlib.sha1(f"{self.endpoint} {self.api_key}".encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"

    # -- events ------------------------------------------------------------------------------------
    def event_payload(self, event: Event) -> dict[str, Any]:
        """The Error Reporting API body for one event."""
        mechanism = _mechanism(event)
        unhandled = mechanism.get("handled") is False
        level = str(event.get("level") or "error")
        app: dict[str, Any] = {
            "releaseStage": self.release_stage or event.get("environment") or "production",
            "type": self.app_type or "python",
        }
        version = self.app_version or event.get("release")
        if version:
            app["version"] = version
        device = dict(self._device)
        if event.get("server_name"):
            device["hostname"] = event["server_name"]
        device["time"] = _iso(event.get("timestamp")) or sent_at()
        out: dict[str, Any] = {
            "exceptions": _exceptions(event),
            "severity": _SEVERITY.get(level, "error"),
            "unhandled": unhandled,
            "severityReason": _severity_reason(event, mechanism, unhandled),
            "app": app,
            "device": device,
            "breadcrumbs": _breadcrumbs(event),
            "metaData": self._metadata(event),
        }
        context = event.get("transaction") or (event.get("request") or {}).get("url")
        if context:
            out["context"] = str(context)
        fingerprint = [str(p) for p in event.get("fingerprint") or []]
        # Only a fully custom fingerprint replaces BugSnag's grouping; "{{ default }}" (or Sentry's
        # "{{default}}") means "the usual grouping, refined", which a single hash cannot express.
        if fingerprint and _DEFAULT_FINGERPRINT.isdisjoint(fingerprint):
            out["groupingHash"] = " ".join(fingerprint)
        user, user_tab = _user(event.get("user"))
        if user:
            out["user"] = user
        if user_tab:
            out["metaData"]["user"] = user_tab
        request = _request(event)
        if request is not None:
            out["request"] = request
        session = (event.get("contexts") or {}).get("session")
        if isinstance(session, dict) and isinstance(session.get("id"), str):
            # BugSnag links an error to its session by this object (stability scores).
            out["session"] = {
                "id": session["id"],
                "startedAt": _iso(session.get("started")) or sent_at(),
                "events": {
                    "handled": int(session.get("handled") or 0),
                    "unhandled": int(session.get("unhandled") or 0),
                },
            }
        return {
            "apiKey": self.api_key,
            "payloadVersion": PAYLOAD_VERSION,
            "notifier": NOTIFIER,
            "events": [out],
        }

    @staticmethod
    def _metadata(event: Event) -> dict[str, Any]:
        tabs: dict[str, Any] = {}
        for name, value in (event.get("contexts") or {}).items():
            if name not in _SKIP_CONTEXTS and isinstance(value, dict):
                tabs[name] = value
        if event.get("extra"):
            tabs["extra"] = event["extra"]
        if event.get("tags"):
            tabs["tags"] = event["tags"]
        logentry = event.get("logentry")
        if logentry or event.get("logger"):
            tabs["log"] = {k: v for k, v in {"logger": event.get("logger"), **(logentry or {})}.items() if v}
        tabs["event"] = {"id": event.get("event_id"), "release": event.get("release")}
        return tabs

    def encode_event(self, event: Event) -> Payload | None:
        return Payload(
            url=self.endpoint,
            body=_json(self.event_payload(event)),
            categories={"error": 1},
            kind="event",
            meta={"version": PAYLOAD_VERSION},
        )

    # -- sessions ----------------------------------------------------------------------------------
    def session_payloads(self, batch: SessionBatch) -> list[dict[str, Any]]:
        """Session Tracking API bodies: one per (release, environment), with per-minute counts."""
        groups: dict[tuple[str | None, str | None], Counter[str]] = {}
        for aggregate in batch.aggregates:
            attrs = aggregate.get("attrs") or {}
            key = (attrs.get("release"), attrs.get("environment"))
            counts = groups.setdefault(key, Counter())
            for bucket in aggregate.get("aggregates") or []:
                started = str(bucket.get("started") or sent_at())
                total = sum(int(bucket.get(k) or 0) for k in ("exited", "errored", "crashed", "abnormal"))
                if total:
                    counts[_minute(started)] += total
        for update in batch.updates:
            if not update.get("init", True):
                continue  # counted when it started
            attrs = update.get("attrs") or {}
            key = (attrs.get("release"), attrs.get("environment"))
            started = str(update.get("started") or sent_at())
            groups.setdefault(key, Counter())[_minute(started)] += 1
        bodies = []
        for (release, environment), counts in groups.items():
            if not counts:
                continue
            app: dict[str, Any] = {
                "releaseStage": self.release_stage or environment or "production",
                "type": self.app_type or "python",
            }
            version = self.app_version or release
            if version:
                app["version"] = version
            bodies.append(
                {
                    "notifier": NOTIFIER,
                    "device": self._device,
                    "app": app,
                    "sessionCounts": [
                        {"startedAt": minute, "sessionsStarted": n} for minute, n in sorted(counts.items())
                    ],
                }
            )
        return bodies

    def encode_sessions(self, batch: SessionBatch) -> list[Payload]:
        return [
            Payload(
                url=self.sessions_endpoint,
                body=_json(body),
                categories={"session": sum(c["sessionsStarted"] for c in body["sessionCounts"])},
                kind="sessions",
                low_priority=True,
                meta={"version": SESSION_PAYLOAD_VERSION},
            )
            for body in self.session_payloads(batch)
        ]

    def render(self, payload: Payload) -> tuple[bytes, dict[str, str]]:
        headers = {
            "Content-Type": "application/json",
            "Bugsnag-Api-Key": self.api_key,
            "Bugsnag-Payload-Version": str(payload.meta.get("version", PAYLOAD_VERSION)),
            "Bugsnag-Sent-At": sent_at(),
            "User-Agent": f"tripwire.python/{__version__}",
        }
        return payload.body, headers


def _minute(started: str) -> str:
    """``2026-11-21T05:27:13.5Z`` → ``2026-11-21T05:27:00Z`` (BugSnag counts sessions per minute)."""
    try:
        moment = datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return started
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc).replace(second=0, microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")
