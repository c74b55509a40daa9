"""Turn a :class:`CaptureItem` into a finished event. Pure: runs on the worker, never on the caller.

Steps: base fields → scope data and per-call overrides → exception chain and stack frames →
scope processors (integrations) → safe serialization → scrubbing → size budget.
"""

from __future__ import annotations

import logging
import platform
import sys
import threading
import traceback
from typing import Any

from ._capture import CaptureItem
from ._options import Options
from ._types import Event, Hint
from ._version import __version__

logger = logging.getLogger("tripwire")

SDK_NAME = "tripwire.python"
_RUNTIME = {
    "name": platform.python_implementation(),
    "version": platform.python_version(),
    "build": sys.version,
}


def _base_event(item: CaptureItem, options: Options) -> Event:
    event: Event = {
        "event_id": item.event_id,
        "timestamp": item.timestamp,
        "platform": "python",
        "level": item.level,
        "environment": options.environment,
        "sdk": {"name": SDK_NAME, "version": __version__},
        "contexts": {"runtime": dict(_RUNTIME)},
    }
    if options.release:
        event["release"] = options.release
    if options.server_name:
        event["server_name"] = options.server_name
    return event


def _apply_scope(event: Event, item: CaptureItem) -> None:
    scope = item.scope
    over = item.overrides
    tags = {**scope.tags, **(over.get("tags") or {})}
    if tags:
        event["tags"] = tags
    extra = {**scope.extras, **(over.get("extras") or {})}
    if extra:
        event["extra"] = extra
    contexts = {**event.get("contexts", {}), **scope.contexts, **(over.get("contexts") or {})}
    event["contexts"] = contexts
    user = over.get("user") or scope.user
    if user:
        event["user"] = dict(user)
    level = over.get("level") or scope.level
    if level:
        event["level"] = level
    fingerprint = over.get("fingerprint") or scope.fingerprint
    if fingerprint:
        event["fingerprint"] = list(fingerprint)
    if scope.transaction and "transaction" not in event:
        event["transaction"] = scope.transaction
    if scope.breadcrumbs:
        event["breadcrumbs"] = {"values": list(scope.breadcrumbs)}


def _exception_values(exc: BaseException, mechanism: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The chain, oldest first (the raised exception last), as the Sentry schema wants."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:
            current = None
        else:
            current = current.__context__
    values = []
    for index, err in enumerate(reversed(chain)):
        frames = [
            {
                "filename": fs.filename,
                "abs_path": fs.filename,
                "function": fs.name,
                "lineno": fs.lineno,
                "context_line": fs.line,
            }
            for fs in traceback.extract_tb(err.__traceback__)
        ]
        value: dict[str, Any] = {"type": type(err).__name__, "value": str(err)}
        module = type(err).__module__
        if module not in ("builtins", "__main__"):
            value["module"] = module
        if frames:
            value["stacktrace"] = {"frames": frames}
        if index == len(chain) - 1:
            value["mechanism"] = dict(mechanism or {"type": "generic", "handled": True})
        values.append(value)
    return values


def _run_processors(event: Event, item: CaptureItem, hint: Hint) -> Event | None:
    for processor in item.scope.processors:
        try:
            result = processor(event, hint)
        except Exception:
            logger.exception("tripwire: event processor %r failed; event kept", processor)
            continue
        if result is None:
            return None
        event = result
    return event


def build_event(item: CaptureItem, options: Options) -> Event | None:
    """The finished event for ``item``; None if a scope processor dropped it."""
    event = _base_event(item, options)
    event.update(item.event)
    _apply_scope(event, item)
    if item.exc is not None:
        mechanism = dict(item.mechanism) if item.mechanism else None
        event["exception"] = {"values": _exception_values(item.exc, mechanism)}
    if item.message is not None and "logentry" not in event:
        event["logentry"] = {"message": item.message, "formatted": item.message}
    if item.thread_id is not None:
        event.setdefault("contexts", {})["thread"] = {"id": item.thread_id}
    hint = item.hint
    if item.exc is not None and "exc_info" not in hint:
        hint = {**hint, "exc_info": (type(item.exc), item.exc, item.exc.__traceback__)}
    return _run_processors(event, item, hint)


def current_thread_id() -> int:
    return threading.get_ident()
