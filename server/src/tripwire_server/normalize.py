"""Event normalization, Relay style: fill defaults, trim oversized fields, cap the total size.

Oversized parts are trimmed rather than rejected, so an event with a huge local variable still
arrives; only an event that stays over the size cap after trimming is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

from . import _json, useragent
from .envelope import EnvelopeError
from .grouping import is_sdk_frame, is_synthetic

MAX_TAG_KEY = 32
MAX_TAG_VALUE = 200
MAX_TAGS = 100
MAX_MESSAGE = 8192
MAX_SHORT = 200  # culprit, transaction, logger, server_name, ...
MAX_RELEASE = 250
MAX_ENVIRONMENT = 64
MAX_FRAMES = 50
MAX_BREADCRUMBS = 100
MAX_EXCEPTIONS = 25
MAX_EXTRA_ITEM = 16 * 1024
MAX_EXTRA_TOTAL = 256 * 1024
MAX_CONTEXT = 8 * 1024
MAX_STRING = 16 * 1024  # any other string
MAX_DEPTH = 10
MAX_ITEMS = 500  # entries of any list or mapping nested in the event
MAX_FUTURE_SKEW = 60.0
_COMPACT = 1000  # bytes: below this, bound() keeps data as it is

_LEVELS = {
    "fatal": "fatal",
    "critical": "fatal",
    "error": "error",
    "err": "error",
    "warning": "warning",
    "warn": "warning",
    "info": "info",
    "log": "info",
    "debug": "debug",
    "trace": "debug",
}
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class EventTooLarge(ValueError):
    """The event is larger than the cap even after trimming."""


#: What U+0000 becomes: PostgreSQL text cannot hold it, and SQLite must store the same thing.
NUL_REPLACEMENT = "\ufffd"


def trim(value: Any, limit: int) -> str:
    """``value`` as a string of at most ``limit`` characters (an ellipsis marks a cut), without NUL."""
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", NUL_REPLACEMENT)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def without_nul(value: Any) -> Any:
    """``value`` with U+0000 replaced by U+FFFD in every string, mapping keys included.

    Run over an event only when its payload holds an escaped NUL (see :func:`may_hold_nul`), so
    the common event pays nothing.
    """
    t = type(value)
    if t is str:
        return value.replace("\x00", NUL_REPLACEMENT) if "\x00" in value else value
    if t is dict:
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if t is list:
        return [without_nul(v) for v in value]
    return value


def may_hold_nul(payload: bytes) -> bool:
    """True if the JSON ``payload`` may decode to a string holding U+0000 (JSON can only carry it
    escaped; a raw NUL byte is checked too, for lenient parsers)."""
    return b"\\u0000" in payload or b"\x00" in payload


def parse_timestamp(value: Any) -> float | None:
    """A Unix timestamp from a number or an RFC 3339 string; None if unparseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
            return number if math.isfinite(number) else None
        except ValueError:
            pass
        try:
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        return parsed.timestamp()
    return None


def normalize_event_id(value: Any) -> str | None:
    """32 lowercase hex digits, or None if ``value`` is not an event id."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace("-", "")
    return text if _HEX32.match(text) else None


def bound(value: Any, depth: int = 0, limit: int = MAX_STRING) -> Any:
    """A JSON-safe copy of ``value`` with long strings, deep nesting and long lists cut."""
    # Written for speed (this runs over every event): exact type checks, no helper calls on the
    # common path of short strings and small containers.
    t = type(value)
    if t is str:
        return value if len(value) <= limit else value[: limit - 3] + "..."
    if value is None or t is int or t is float or t is bool:
        return value
    if depth == 0 and (t is dict or t is list) and limit >= _COMPACT:
        # Fast path: data that serializes to at most _COMPACT bytes can hold no string and no
        # list over the limits, so it is kept as it is.
        size = _json.compact_size(value)
        if size is not None and size <= _COMPACT and (t is list or all(type(k) is str for k in value)):
            return value
    if depth >= MAX_DEPTH and (t is dict or t is list):
        return trim(json.dumps(value, default=str)[:limit], limit)
    if t is dict:
        if len(value) <= MAX_ITEMS:
            return {
                (k if type(k) is str and len(k) <= 256 else trim(k, 256)): bound(v, depth + 1, limit)
                for k, v in value.items()
            }
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["..."] = f"{len(value) - MAX_ITEMS} more entries removed"
                break
            out[trim(k, 256)] = bound(v, depth + 1, limit)
        return out
    if t is list:
        items = [bound(v, depth + 1, limit) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more items removed")
        return items
    if isinstance(value, (bool, int, float)):
        return value
    return trim(str(value), limit)


def _bound_sized(value: Any, max_bytes: int, small: bool = False) -> Any:
    """``bound(value)``, replaced by a trimmed JSON string if it serializes above ``max_bytes``.

    ``small`` says the whole event is under ``max_bytes``, so no part of it can be over.
    """
    out = bound(value)
    if small:
        return out
    text = json.dumps(out, default=str)
    if len(text) <= max_bytes:
        return out
    return trim(text, max_bytes)


# Frame keys we keep, by kind: 1 string, 2 integer, 3 boolean, 4 list of strings, 5 mapping.
_FRAME_KEYS = {
    "filename": 1,
    "abs_path": 1,
    "module": 1,
    "function": 1,
    "raw_function": 1,
    "symbol": 1,
    "package": 1,
    "platform": 1,
    "instruction_addr": 1,
    "context_line": 1,
    "lineno": 2,
    "colno": 2,
    "in_app": 3,
    "pre_context": 4,
    "post_context": 4,
    "vars": 5,
}


def _frame(f: dict[str, Any], small: bool) -> dict[str, Any]:
    # Fast path for the usual frame: serialized in at most 1 KiB (so no string in it is over
    # the limit; checked in C) and the fields grouping reads have the right types.
    size = _json.compact_size(f)
    if (
        size is not None
        and size <= 1024
        and type(f.get("function", "")) is str
        and type(f.get("module", "")) is str
        and type(f.get("filename", "")) is str
        and type(f.get("in_app", False)) is bool
        and type(f.get("lineno", 0)) is int
    ):
        return f
    # One pass over the frame's own keys, trimming and dropping what does not fit.
    frame: dict[str, Any] = {}
    for key, v in f.items():
        kind = _FRAME_KEYS.get(key)
        if kind is None:
            continue
        t = type(v)
        if kind == 1:
            if t is str:
                frame[key] = v if len(v) <= 1024 else v[:1021] + "..."
        elif kind == 2:
            if t is int:
                frame[key] = v
        elif kind == 3:
            if t is bool:
                frame[key] = v
        elif kind == 4:
            if t is list:
                frame[key] = [x if len(x) <= 1024 else x[:1021] + "..." for x in v[-10:] if type(x) is str]
        elif t is dict:
            frame[key] = _bound_sized(v, MAX_EXTRA_ITEM, small)
    return frame


def _frames(stacktrace: Any, small: bool = False) -> dict[str, Any] | None:
    if not isinstance(stacktrace, dict):
        return None
    raw = stacktrace.get("frames")
    if not isinstance(raw, list):
        return None
    frames = [_frame(f, small) for f in raw if type(f) is dict]
    out: dict[str, Any] = {"frames": frames}
    if len(frames) > MAX_FRAMES:
        # Like Sentry: keep the outermost calls and the ones nearest the crash, drop the middle.
        head, tail = MAX_FRAMES * 2 // 5, MAX_FRAMES - MAX_FRAMES * 2 // 5
        out["frames"] = frames[:head] + frames[-tail:]
        out["frames_omitted"] = [head, len(frames) - tail]
    return out


def _values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        value = value.get("values")
    return value if isinstance(value, list) else []


def _exception(value: Any, small: bool = False) -> list[dict[str, Any]]:
    out = []
    for exc in _values(value)[-MAX_EXCEPTIONS:]:
        if not isinstance(exc, dict):
            continue
        item: dict[str, Any] = {}
        for key, limit in (("type", 256), ("value", MAX_MESSAGE), ("module", 1024)):
            if exc.get(key) is not None:
                item[key] = trim(exc[key], limit)
        if isinstance(exc.get("mechanism"), dict):
            item["mechanism"] = bound(exc["mechanism"])
        if exc.get("thread_id") is not None:
            item["thread_id"] = bound(exc["thread_id"])
        stacktrace = _frames(exc.get("stacktrace"), small)
        if stacktrace is not None:
            item["stacktrace"] = stacktrace
        if item:
            out.append(item)
    return out


def _tags(value: Any) -> dict[str, str]:
    pairs: list[Any] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [p for p in value if isinstance(p, (list, tuple)) and len(p) == 2]
    out: dict[str, str] = {}
    for key, val in pairs:
        if key is None or val is None or len(out) >= MAX_TAGS:
            continue
        out[trim(key, MAX_TAG_KEY).strip()] = trim(val, MAX_TAG_VALUE)
    return out


def _logentry(data: dict[str, Any]) -> dict[str, Any] | None:
    entry = data.get("logentry")
    if not isinstance(entry, dict):
        message = data.get("message")
        if isinstance(message, dict):
            entry = message
        elif isinstance(message, str) and message:
            entry = {"formatted": message}
        else:
            return None
    out: dict[str, Any] = {}
    message = entry.get("message")
    formatted = entry.get("formatted")
    params = entry.get("params")
    if isinstance(message, str):
        out["message"] = trim(message, MAX_MESSAGE)
    if params is not None:
        out["params"] = bound(params)
    if isinstance(formatted, str):
        out["formatted"] = trim(formatted, MAX_MESSAGE)
    elif isinstance(message, str):
        text = message
        if isinstance(params, (list, dict)) and params:
            try:
                text = message % (tuple(params) if isinstance(params, list) else params)
            except (TypeError, ValueError, KeyError):
                text = message
        out["formatted"] = trim(text, MAX_MESSAGE)
    return out or None


def normalize_event(
    data: Any,
    *,
    event_id: str | None,
    received_at: float,
    remote_addr: str | None,
    max_size: int,
    payload_size: int | None = None,
) -> dict[str, Any]:
    """A normalized copy of a Sentry event payload (see the module docstring).

    Raises :class:`~.envelope.EnvelopeError` if ``data`` is not an event at all and
    :class:`EventTooLarge` if it stays above ``max_size`` bytes after trimming.
    """
    if not isinstance(data, dict):
        raise EnvelopeError("event payload must be a JSON object")
    # Knowing the payload is small lets us skip the per-part size checks (each a json.dumps).
    small_8k = payload_size is not None and payload_size <= MAX_CONTEXT
    small_16k = payload_size is not None and payload_size <= MAX_EXTRA_ITEM
    ev: dict[str, Any] = {}
    ev["event_id"] = (
        normalize_event_id(data.get("event_id")) or normalize_event_id(event_id) or uuid.uuid4().hex
    )
    ts = parse_timestamp(data.get("timestamp"))
    if ts is None or ts > received_at + MAX_FUTURE_SKEW:
        ts = received_at
    ev["timestamp"] = ts
    ev["received"] = received_at
    ev["platform"] = trim(data.get("platform") or "other", 64)
    ev["level"] = _LEVELS.get(str(data.get("level", "error")).lower(), "error")
    for key in ("logger", "transaction", "server_name", "culprit", "dist"):
        if data.get(key) is not None:
            ev[key] = trim(data[key], MAX_SHORT)
    if data.get("release"):
        ev["release"] = trim(data["release"], MAX_RELEASE).strip()
    if data.get("environment"):
        ev["environment"] = trim(data["environment"], MAX_ENVIRONMENT).strip()
    logentry = _logentry(data)
    if logentry:
        ev["logentry"] = logentry
    exception = _exception(data.get("exception"), small_16k)
    if exception:
        ev["exception"] = {"values": exception}
    threads = []
    for thread in _values(data.get("threads"))[:100]:
        if isinstance(thread, dict):
            t = {k: bound(v) for k, v in thread.items() if k != "stacktrace"}
            st = _frames(thread.get("stacktrace"), small_16k)
            if st is not None:
                t["stacktrace"] = st
            threads.append(t)
    if threads:
        ev["threads"] = {"values": threads}
    crumbs = [bound(c, limit=MAX_MESSAGE) for c in _values(data.get("breadcrumbs")) if isinstance(c, dict)]
    if crumbs:
        ev["breadcrumbs"] = {"values": crumbs[-MAX_BREADCRUMBS:]}
    tags = _tags(data.get("tags"))
    if tags:
        ev["tags"] = tags
    if isinstance(data.get("fingerprint"), list):
        ev["fingerprint"] = [trim(p, 1024) for p in data["fingerprint"][:64] if p is not None]
    user = data.get("user")
    if isinstance(user, dict):
        user = bound(user)
        if user.get("ip_address") == "{{auto}}":
            user["ip_address"] = remote_addr
        ev["user"] = user
    if isinstance(data.get("request"), dict):
        ev["request"] = _bound_sized(data["request"], MAX_EXTRA_TOTAL, small_16k)
    if isinstance(data.get("contexts"), dict):
        ev["contexts"] = {
            trim(k, 256): _bound_sized(v, MAX_CONTEXT, small_8k)
            for k, v in list(data["contexts"].items())[:50]
        }
    if isinstance(data.get("extra"), dict):
        extra: dict[str, Any] = {}
        total = 0
        for k, v in data["extra"].items():
            item = _bound_sized(v, MAX_EXTRA_ITEM, small_16k)
            if not small_16k:
                total += len(json.dumps(item, default=str))
            if total > MAX_EXTRA_TOTAL:
                extra["..."] = "more extra data removed (over 256 KiB)"
                break
            extra[trim(k, 256)] = item
        ev["extra"] = extra
    for key in ("sdk", "modules", "debug_meta", "transaction_info"):
        if isinstance(data.get(key), dict):
            ev[key] = bound(data[key])
    if ev["platform"] in ("javascript", "node"):
        _mark_package_frames(ev)
    useragent.add_contexts(ev)
    # Normalizing only trims (plus a few small defaults): a payload well under the cap stays under.
    if payload_size is not None and payload_size + 4096 <= max_size:
        return ev
    return _cap(ev, max_size)


def _mark_package_frames(ev: dict[str, Any]) -> None:
    """JavaScript frames of ``node_modules`` and of the SDK bundles are not the app's code."""
    for exc in ev.get("exception", {}).get("values", []):
        for frame in exc.get("stacktrace", {}).get("frames", []):
            if frame.get("in_app") is not False and is_sdk_frame(frame):
                frame["in_app"] = False


# What to drop, in order, when an event is still over the size cap.
def _strip_vars(ev: dict[str, Any]) -> None:
    for exc in ev.get("exception", {}).get("values", []):
        for frame in exc.get("stacktrace", {}).get("frames", []):
            frame.pop("vars", None)


def _cap(ev: dict[str, Any], max_size: int) -> dict[str, Any]:
    steps: list[Callable[[dict[str, Any]], object]] = [
        lambda e: e.pop("modules", None),
        lambda e: e.setdefault("breadcrumbs", {"values": []}).update(values=e["breadcrumbs"]["values"][-10:]),
        _strip_vars,
        lambda e: e.pop("extra", None),
        lambda e: e.get("request", {}).pop("data", None) if isinstance(e.get("request"), dict) else None,
        lambda e: e.pop("threads", None),
        lambda e: e.pop("breadcrumbs", None),
        lambda e: e.pop("contexts", None),
    ]
    size = len(_json.dumps(ev))
    for step in steps:
        if size <= max_size:
            break
        step(ev)
        size = len(_json.dumps(ev))
    if size > max_size:
        raise EventTooLarge(f"event is {size} bytes after trimming, over the {max_size} byte limit")
    return ev


def describe(ev: dict[str, Any]) -> tuple[str, str, str, str]:
    """``(title, culprit, type, value)`` of a normalized event, for issue lists."""
    values = ev.get("exception", {}).get("values", [])
    culprit = ev.get("transaction") or ev.get("culprit") or ""
    log = ev.get("logentry") or {}
    message = (log.get("formatted") or log.get("message") or "").split("\n", 1)[0]
    if values and message and is_synthetic(values[-1]):
        # JavaScript SDKs attach a made-up exception to captureMessage: the message is the event.
        return trim(message, 1024), trim(culprit, MAX_SHORT), "message", trim(message, 1024)
    if values:
        exc = values[-1]
        type_ = exc.get("type") or "Error"
        value = (exc.get("value") or "").split("\n", 1)[0]
        title = f"{type_}: {value}" if value else type_
        if not culprit:
            frames = exc.get("stacktrace", {}).get("frames", [])
            crash = next((f for f in reversed(frames) if f.get("in_app")), frames[-1] if frames else None)
            if crash:
                where = crash.get("module") or crash.get("filename") or "?"
                culprit = f"{where} in {crash.get('function') or '?'}"
    else:
        value = message
        type_ = "message" if value else "event"
        title = value or "<no message>"
    return trim(title, 1024), trim(culprit, MAX_SHORT), trim(type_, 256), trim(value, 1024)


def derived_tags(ev: dict[str, Any]) -> list[tuple[str, str]]:
    """The tags an issue counts for one event: the event's own plus level, release, environment,
    server, transaction, user, handled/mechanism, URL (without query) and runtime."""
    tags = dict(ev.get("tags") or {})
    tags["level"] = ev["level"]
    for key in ("release", "environment", "server_name", "transaction"):
        if ev.get(key):
            tags[key] = trim(ev[key], MAX_TAG_VALUE)
    user = ev.get("user") or {}
    for key in ("id", "email", "username", "ip_address"):
        if user.get(key):
            tags["user"] = trim(f"{key}:{user[key]}", MAX_TAG_VALUE)
            break
    values = ev.get("exception", {}).get("values", [])
    if values:
        mechanism = values[-1].get("mechanism") or {}
        if isinstance(mechanism.get("handled"), bool):
            tags["handled"] = "yes" if mechanism["handled"] else "no"
        if mechanism.get("type"):
            tags["mechanism"] = trim(mechanism["type"], MAX_TAG_VALUE)
    request = ev.get("request")
    if isinstance(request, dict) and isinstance(request.get("url"), str):
        tags["url"] = trim(request["url"].split("?", 1)[0], MAX_TAG_VALUE)
    for key, value in useragent.tags(ev).items():
        tags.setdefault(key, trim(value, MAX_TAG_VALUE))
    runtime = (ev.get("contexts") or {}).get("runtime")
    if isinstance(runtime, dict) and runtime.get("name"):
        tags["runtime"] = trim(f"{runtime['name']} {runtime.get('version', '')}".strip(), MAX_TAG_VALUE)
    return sorted(tags.items())
