"""Raygun: the Crash Reporting API, payload v1 (``POST /entries`` with ``X-ApiKey``).

The event the SDK built (Sentry schema) becomes Raygun's message, in the shape the official
``raygun4py`` sends for the same exception: ``details.error`` is the raised exception, its cause or
context is its ``innerError`` (and so on down the chain), each with a ``stackTrace`` outermost call
first whose frames carry ``className`` (the function, as raygun4py fills it), ``methodName`` (the
source line), ``fileName``, ``lineNumber`` and ``localVariables``. Tags become Raygun's tag list,
contexts and extra its ``userCustomData``, plus ``request``, ``user``, ``version``, ``breadcrumbs``,
``environment`` and ``groupingKey`` (a custom fingerprint).

Unlike raygun4py it never sends environment variables or module globals: they hold secrets.

Answers, as Raygun documents them: 202 accepted; 400 a bad message and 403 a bad API key (dropped,
counted as ``rejected``); 413 too large (dropped, ``too_large``); 429 rate limited (kept and retried
after ``Retry-After``). :func:`~tripwire.delivery.policy.classify` decides that, as for every backend.

>>> RaygunReporter(api_key="raygun-key")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from typing import Any

from .._exceptions import ConfigurationError
from .._types import Event
from .._version import __version__
from .http import HttpReporter, Payload

#: What the official raygun4py client posts to.
DEFAULT_ENDPOINT = "https://api.raygun.io/entries"
CLIENT = {"name": "tripwire", "version": __version__, "clientUrl": "https://github.com/tripwire-dev/tripwire"}
#: Sentry's "the default grouping" fingerprint entry, in both spellings.
_DEFAULT_FINGERPRINT = frozenset({"{{ default }}", "{{default}}"})
_LEVELS = {"fatal": "error", "error": "error", "warning": "warning", "info": "info", "debug": "debug"}


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr).encode(
        "utf-8", "replace"
    )


def _iso(timestamp: Any) -> str:
    if isinstance(timestamp, int | float):
        return datetime.fromtimestamp(float(timestamp), timezone.utc).isoformat()
    if isinstance(timestamp, str):
        return timestamp
    return datetime.now(timezone.utc).isoformat()


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    line = frame.get("context_line")
    function = str(frame.get("function") or "<module>")
    lineno = frame.get("lineno")
    variables = frame.get("vars")
    return {
        "lineNumber": lineno if isinstance(lineno, int) else 0,
        "className": function,
        "fileName": str(frame.get("abs_path") or frame.get("filename") or "<unknown>"),
        # raygun4py puts the source line here (its dashboard shows it under the function).
        "methodName": f"{line}\n" if isinstance(line, str) else function,
        # Text values, as raygun4py sends them.
        # Text values, as raygun4py sends them; {} for a frame without any (or with locals off).
        "localVariables": {str(k): v if isinstance(v, str) else str(v) for k, v in variables.items()}
        if isinstance(variables, dict)
        else {},
    }


def _error(values: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The raised exception, with its cause as ``innerError`` and so on (Sentry lists it oldest first)."""
    error: dict[str, Any] | None = None
    for value in values:  # oldest first: each wraps the one before
        class_name = str(value.get("type") or "Exception")
        frames = (value.get("stacktrace") or {}).get("frames") or []
        error = {
            "className": class_name,
            "message": f"{class_name}: {value.get('value') or ''}",
            "stackTrace": [_frame(f) for f in frames if isinstance(f, dict)],
            "globalVariables": None,
            "innerError": error,
            "data": {},
        }
    return error


def _message_error(event: Event) -> dict[str, Any]:
    logentry = event.get("logentry") or {}
    text = str(logentry.get("formatted") or logentry.get("message") or event.get("message") or "")
    # Grouped by the template, as the Sentry path groups log messages.
    template = str(logentry.get("message") or text)
    return {
        "className": template[:200] or "Message",
        "message": text,
        "stackTrace": [],
        "globalVariables": None,
        "innerError": None,
        "data": {},
    }


def _request(event: Event) -> dict[str, Any] | None:
    request = event.get("request")
    if not isinstance(request, dict) or not request:
        return None
    headers = request.get("headers") or {}
    url = str(request.get("url") or "")
    query = request.get("query_string")
    if isinstance(query, str):
        from urllib.parse import parse_qsl

        query_string: Any = dict(parse_qsl(query, keep_blank_values=True))
    else:
        query_string = query if isinstance(query, dict) else None
    env = request.get("env") or {}
    data = request.get("data")
    host = next((v for k, v in headers.items() if k.lower() == "host"), None) or env.get("SERVER_NAME")
    return {
        "httpMethod": request.get("method"),
        "url": url,
        "hostName": host,
        "iPAddress": env.get("REMOTE_ADDR") or (event.get("user") or {}).get("ip_address"),
        "queryString": query_string,
        "headers": dict(headers),
        "form": data if isinstance(data, dict) else {},
        "rawData": data if isinstance(data, str) else None,
    }


def _user(user: Any) -> dict[str, Any] | None:
    if not isinstance(user, dict) or not user:
        return None
    identifier = user.get("id") or user.get("email") or user.get("username") or user.get("ip_address")
    out: dict[str, Any] = {
        "identifier": str(identifier) if identifier is not None else None,
        "isAnonymous": identifier is None,
    }
    if user.get("email"):
        out["email"] = str(user["email"])
    name = user.get("name") or user.get("username")
    if name:
        out["fullName"] = str(name)
        out["firstName"] = str(name).split(" ", 1)[0]
    return out


def _breadcrumbs(event: Event) -> list[dict[str, Any]]:
    crumbs = event.get("breadcrumbs") or {}
    values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    out = []
    for crumb in values or []:
        if not isinstance(crumb, dict):
            continue
        timestamp = crumb.get("timestamp")
        out.append(
            {
                "message": str(crumb.get("message") or crumb.get("category") or ""),
                "category": str(crumb.get("category") or ""),
                "level": _LEVELS.get(str(crumb.get("level") or "info"), "info"),
                "type": "manual" if crumb.get("type") in (None, "default") else str(crumb["type"]),
                "customData": dict(crumb.get("data") or {}),
                # Raygun takes milliseconds since the epoch.
                "timestamp": int(float(timestamp) * 1000) if isinstance(timestamp, int | float) else None,
            }
        )
    return out


class RaygunReporter(HttpReporter):
    """Send to Raygun Crash Reporting.

    Options: ``api_key`` (required), ``endpoint`` (default Raygun's own), ``version`` (default: the
    event's release), ``tags`` (added to every message), and the HTTP options of
    :class:`~tripwire.reporters.http.HttpReporter`. Bodies are sent uncompressed (the API does not
    document gzip).
    """

    name = "raygun"
    compress = False

    def __init__(
        self,
        api_key: str,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        version: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        **http_options: Any,
    ) -> None:
        super().__init__(**http_options)
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigurationError(f"reporters[{self.name}].api_key: a Raygun API key is required")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"reporters[{self.name}].endpoint: expected an http(s) URL, got {endpoint!r}"
            )
        self.api_key = api_key.strip()
        self.endpoint = endpoint
        self.version = version
        self.tags = [str(t) for t in tags]
        self._environment = {
            "processorCount": os.cpu_count() or 0,
            "architecture": platform.architecture()[0],
            "cpu": platform.processor(),
            "oSVersion": f"{platform.system()} {platform.release()}",
            "runtimeVersion": f"Python {sys.version}",
            "runtimeLocation": sys.executable,
        }
        self._machine = socket.gethostname()

    def spool_key(self) -> str:
        import hashlib

        digest = hashlib.sha1(f"{self.endpoint} {self.api_key}".encode()).hexdigest()[:12]
        return f"{self.name}-{digest}"

    def message(self, event: Event) -> dict[str, Any]:
        """The Raygun v1 message for one event (pure)."""
        values = [v for v in (event.get("exception") or {}).get("values") or [] if isinstance(v, dict)]
        error = _error(values) or _message_error(event)
        tags = [*self.tags, *(f"{k}:{v}" for k, v in (event.get("tags") or {}).items())]
        if event.get("environment"):
            tags.append(str(event["environment"]))
        custom: dict[str, Any] = {}
        for name, value in (event.get("contexts") or {}).items():
            if name != "trace" and isinstance(value, dict):
                custom[name] = value
        custom.update(event.get("extra") or {})
        logentry = event.get("logentry")
        if values and isinstance(logentry, dict) and logentry.get("formatted"):
            custom["message"] = logentry["formatted"]  # what was happening, beside the exception
        details: dict[str, Any] = {
            "machineName": event.get("server_name") or self._machine,
            "version": self.version or event.get("release") or "Not defined",
            "client": CLIENT,
            "error": error,
            "environment": self._environment,
            "tags": tags,
            "userCustomData": custom,
            "request": _request(event),
            "user": _user(event.get("user")),
            "breadcrumbs": _breadcrumbs(event),
            "groupingKey": None,
        }
        fingerprint = [str(p) for p in event.get("fingerprint") or []]
        if fingerprint and _DEFAULT_FINGERPRINT.isdisjoint(fingerprint):
            details["groupingKey"] = " ".join(fingerprint)[:100]
        return {"occurredOn": _iso(event.get("timestamp")), "details": details}

    def encode_event(self, event: Event) -> Payload | None:
        return Payload(
            url=self.endpoint, body=_json(self.message(event)), categories={"error": 1}, kind="event"
        )

    def render(self, payload: Payload) -> tuple[bytes, dict[str, str]]:
        headers = {
            "Content-Type": "application/json",
            "X-ApiKey": self.api_key,
            "User-Agent": f"tripwire.python/{__version__}",
        }
        return payload.body, headers
