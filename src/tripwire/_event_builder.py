"""Turn a :class:`CaptureItem` into a finished event. Pure: runs on the worker, never on the caller.

Steps: base fields → scope data and per-call overrides → exception tree with frames (source, in_app,
locals) → scope processors (integrations) → safe serialization of every field, scrubbing secrets in the
same pass → request and user rules (URLs, cookies, PII) → size budget.
The result is a Sentry event (https://develop.sentry.dev/sdk/data-model/event-payloads/) that
``json.dumps(event, allow_nan=False)`` accepts; docs/events.md describes it.
"""

from __future__ import annotations

import builtins
import platform
import sys
from collections.abc import Mapping
from typing import Any

from . import _budget, _deferred, _scope
from ._capture import CaptureItem
from ._log import logger
from ._options import Options
from ._scrub import Scrubber
from ._serialize import Serializer, safe_str
from ._stacktrace import MAX_EXCEPTIONS, FrameBuilder
from ._types import LEVELS, Event, Hint
from ._version import __version__

SDK_NAME = "tripwire.python"
#: Characters kept of an exception value or a message (Sentry's own limit).
MAX_MESSAGE_LENGTH = 8192
#: Tag keys and values (Sentry's limits: longer tags are rejected by the server).
MAX_TAG_KEY, MAX_TAG_VALUE = 32, 200
#: release, environment, server_name, transaction, logger, fingerprint parts.
MAX_NAME_LENGTH = 200
#: Limits for the locals of frames that are not in app (see docs/events.md).
LIBRARY_MAX_DEPTH, LIBRARY_MAX_BREADTH, LIBRARY_MAX_STRING = 2, 10, 200

_GROUP: Any = getattr(builtins, "BaseExceptionGroup", ())
#: The ``sdk`` field as the builder sets it: plain strings, so an event that still has it as is needs
#: no serializing pass for it.
_SDK = {
    "name": SDK_NAME,
    "version": __version__,
    "packages": [{"name": "pypi:tripwire", "version": __version__}],
}
_static: dict[str, Any] = {}


def _static_contexts() -> dict[str, Any]:
    """os and runtime contexts: the same for the life of the process, computed once on the worker."""
    contexts = _static.get("contexts")
    if contexts is None:
        uname = platform.uname()
        contexts = _static["contexts"] = {
            "os": {"name": uname.system, "version": uname.release, "build": uname.version},
            "runtime": {
                "name": platform.python_implementation(),
                "version": platform.python_version(),
                "build": sys.version,
            },
        }
    return contexts


def installed_modules() -> dict[str, str]:
    """Installed distributions and versions (``attach_modules``): read once, on the worker."""
    modules = _static.get("modules")
    if modules is None:
        modules = {}
        for dist in _deferred.distributions():
            try:
                name = dist.metadata["Name"]
                if name:
                    modules[name.lower()] = dist.version
            except Exception:
                continue
        _static["modules"] = modules
    return modules


class _State:
    """Per-options helpers, kept between events (caches of paths and in_app)."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.frames = FrameBuilder(options)


_states: dict[int, _State] = {}


def _state(options: Options) -> _State:
    state = _states.get(id(options))
    if state is None or state.options is not options:
        if len(_states) > 16:
            _states.clear()
        state = _states[id(options)] = _State(options)
    return state


# -- exceptions ---------------------------------------------------------------------------------


def _exception_value(err: BaseException, ser: Serializer, path: tuple[str, ...]) -> str:
    value = safe_str(err, MAX_MESSAGE_LENGTH * 2)
    notes = getattr(err, "__notes__", None)
    if isinstance(notes, list | tuple) and notes:
        value = "\n".join([value, *(safe_str(n, MAX_MESSAGE_LENGTH) for n in notes[:20])])
    return ser.string(value, path, MAX_MESSAGE_LENGTH)


def _exceptions(
    item: CaptureItem, state: _State, ser: Serializer, mechanism: dict[str, Any]
) -> list[dict[str, Any]]:
    """The exception tree as Sentry wants it: oldest first, the raised exception last.

    Chains (``__cause__``, else ``__context__`` unless suppressed) are followed; ExceptionGroup members
    are expanded with ``mechanism.exception_id``/``parent_id``/``source`` so a reader can rebuild the tree.
    """
    assert item.exc is not None
    # Library frames (framework internals) get shallow locals: they are rarely what a reader needs,
    # and they are most of the cost of building an event in a web app. Their cuts are documented
    # once (docs/events.md) instead of noted value by value in _meta.
    library = Serializer(
        None,
        max_string=min(ser.max_string, LIBRARY_MAX_STRING),
        max_depth=LIBRARY_MAX_DEPTH,
        max_breadth=LIBRARY_MAX_BREADTH,
        scrubber=ser.scrubber,
    )
    nodes: list[tuple[BaseException, int | None, str | None]] = []  # (error, parent_id, source)
    seen: set[int] = set()
    has_group = False
    stack: list[tuple[BaseException, int | None, str | None]] = [(item.exc, None, None)]
    while stack and len(nodes) < MAX_EXCEPTIONS:
        err, parent, source = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        my_id = len(nodes)
        nodes.append((err, parent, source))
        children: list[tuple[BaseException, int | None, str | None]] = []
        if err.__cause__ is not None:
            children.append((err.__cause__, my_id, "__cause__"))
        elif not err.__suppress_context__ and err.__context__ is not None:
            children.append((err.__context__, my_id, "__context__"))
        if isinstance(err, _GROUP):
            has_group = True
            members = [m for m in getattr(err, "exceptions", ()) if isinstance(m, BaseException)]
            children.extend((m, my_id, f"exceptions[{i}]") for i, m in enumerate(members))
        stack.extend(reversed(children))
    count = len(nodes)
    values: list[dict[str, Any]] = []
    # Sentry lists the tree depth-first from the raised exception and then reverses it: oldest first.
    for index, (err, parent, source) in enumerate(nodes):
        position = count - 1 - index
        path = ("exception", "values", str(position))
        cls = type(err)
        value: dict[str, Any] = {
            "type": safe_str(getattr(cls, "__name__", "Exception"), MAX_NAME_LENGTH),
            "value": _exception_value(err, ser, (*path, "value")),
        }
        module = getattr(cls, "__module__", None)
        if isinstance(module, str) and module not in ("builtins", "__main__"):
            value["module"] = module
        if index == 0:
            mech = dict(mechanism)
            if item.thread_id is not None:
                value["thread_id"] = item.thread_id
        else:
            mech = {"type": "chained", "handled": mechanism.get("handled", True)}
        errno = getattr(err, "errno", None)
        if isinstance(err, OSError) and isinstance(errno, int):
            mech.setdefault("meta", {})["errno"] = {"number": errno}
        if has_group:
            mech["exception_id"] = index
            if parent is not None:
                mech["parent_id"] = parent
                mech["source"] = source
            if isinstance(err, _GROUP):
                mech["is_exception_group"] = True
        value["mechanism"] = mech
        frames = state.frames.frames(
            err.__traceback__, item.live_locals or {}, ser, (*path, "stacktrace"), library
        )
        if frames:
            value["stacktrace"] = {"frames": frames}
        values.append(value)
    values.reverse()
    return values


# -- scope data ---------------------------------------------------------------------------------


def _mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        try:
            return dict(value)
        except Exception:
            return {}
    return {}


def _apply_scope(event: Event, item: CaptureItem) -> None:
    scope = item.scope
    over = item.overrides
    tags = {**_mapping(event.get("tags")), **scope.tags, **_mapping(over.get("tags"))}
    if tags:
        event["tags"] = tags
    extra = {**_mapping(event.get("extra")), **scope.extras, **_mapping(over.get("extras"))}
    if extra:
        event["extra"] = extra
    event["contexts"] = {
        **_mapping(event.get("contexts")),
        **scope.contexts,
        **_mapping(over.get("contexts")),
    }
    if item.repeats:
        # Occurrences of this error the repeat limit counted instead of sending (see _repeats).
        event["contexts"]["repeats"] = {"type": "repeats", "coalesced": item.repeats}
    user = over.get("user") or scope.user or event.get("user")
    if user:
        event["user"] = _mapping(user)
    level = over.get("level") or scope.level
    if level:
        event["level"] = level
    fingerprint = over.get("fingerprint") or scope.fingerprint or event.get("fingerprint")
    if fingerprint:
        event["fingerprint"] = fingerprint if isinstance(fingerprint, str) else list(fingerprint)
    if scope.transaction and "transaction" not in event:
        event["transaction"] = scope.transaction
    if scope.breadcrumbs:
        event["breadcrumbs"] = {"values": list(scope.breadcrumbs)}


def _run_processors(event: Event, item: CaptureItem, hint: Hint) -> Event | None:
    for processor in (*item.scope.processors, *_scope.global_processors):
        try:
            result = processor(event, hint)
        except Exception:
            logger.exception("tripwire: event processor %r failed; event kept", processor)
            continue
        if result is None:
            return None
        event = result
    return event


# -- serialization and scrubbing ---------------------------------------------------------------


def _name(value: Any) -> str:
    return safe_str(value, MAX_NAME_LENGTH)


def _serialize(event: Event, ser: Serializer, options: Options) -> Event:
    """Every field JSON-safe and bounded; the exception values are built safe already."""
    out: Event = {}
    for key, value in event.items():
        if key == "exception":
            out[key] = value
        elif key in ("event_id", "platform"):
            out[key] = _name(value)
        elif key == "timestamp":
            out[key] = value if isinstance(value, int | float) else _name(value)
        elif key == "level":
            out[key] = value if value in LEVELS else "error"
        elif key in ("release", "environment", "server_name", "transaction", "logger", "dist"):
            if value is not None:
                # Sentry allows 64 characters for an environment, 200 for the others.
                out[key] = safe_str(value, 64 if key == "environment" else MAX_NAME_LENGTH)
        elif key == "tags":
            out[key] = {
                safe_str(k, MAX_TAG_KEY): safe_str(v, MAX_TAG_VALUE).replace("\n", " ")
                for k, v in _mapping(value).items()
            }
        elif key == "fingerprint":
            parts = value if isinstance(value, list) else [value]
            out[key] = [_name(p) for p in parts[:20]]
        elif key == "sdk" and value == _SDK:
            out[key] = value  # ours, unchanged: known JSON-safe (equality, so no lookalike object passes)
        elif key == "contexts":
            contexts = {}
            static = _static_contexts()
            for name, ctx in _mapping(value).items():
                if type(name) is str and name in static and ctx == static[name]:
                    contexts[name] = ctx  # os and runtime as the builder set them: known JSON-safe
                    continue
                clean = safe_str(name, MAX_NAME_LENGTH)
                ctx_value = ser.serialize(ctx, ("contexts", clean))
                contexts[clean] = ctx_value if isinstance(ctx_value, dict) else {"value": ctx_value}
            out[key] = contexts
        elif key == "modules":
            out[key] = {_name(k): _name(v) for k, v in _mapping(value).items()}
        elif key == "breadcrumbs":
            out[key] = _breadcrumbs(value, ser, options, event.get("timestamp"))
        elif key == "logentry":
            out[key] = _logentry(value, ser)
        elif key == "user":
            user = ser.serialize(_mapping(value), ("user",))
            if isinstance(user.get("id"), int | float):
                user["id"] = str(user["id"])
            out[key] = user
        elif key == "request":
            # Request parts have their own rules (cookies with PII, URLs...): scrub_request applies
            # them after serialization, so serialize without the generic key rule here.
            raw = Serializer(ser.meta, max_string=ser.max_string, max_depth=ser.max_depth)
            out[key] = raw.serialize(value, ("request",))
        else:
            clean = safe_str(key, MAX_NAME_LENGTH)
            out[clean] = ser.serialize(value, (clean,))
    return out


def _breadcrumbs(value: Any, ser: Serializer, options: Options, now: Any = None) -> dict[str, Any]:
    crumbs = value.get("values") if isinstance(value, Mapping) else value
    if not isinstance(crumbs, list | tuple):
        return {"values": []}
    limit = options.max_breadcrumbs
    kept = list(crumbs)[-limit:] if limit else []
    if len(crumbs) > len(kept):
        ser.note(("breadcrumbs", "values"), len=len(crumbs))
    out = []
    for i, crumb in enumerate(kept):
        path = ("breadcrumbs", "values", str(i))
        c = ser.serialize(_mapping(crumb), path)
        if "level" in c and c["level"] not in LEVELS:
            c["level"] = "info"
        if "message" in c and not isinstance(c["message"], str):
            c["message"] = safe_str(c["message"], options.max_value_length)
        for field in ("type", "category"):  # strings in the protocol; anything else is shown as text
            if field in c and not isinstance(c[field], str):
                c[field] = safe_str(c[field], MAX_NAME_LENGTH)
        if "data" in c and not isinstance(c["data"], dict):
            c["data"] = {"value": c["data"]}
        ts = crumb.get("timestamp") if isinstance(crumb, Mapping) else None
        if isinstance(ts, int | float) and not isinstance(ts, bool):
            c["timestamp"] = ts
        elif not isinstance(c.get("timestamp"), str | float) and isinstance(now, float):
            c["timestamp"] = now  # the protocol wants one; a hook may have removed it
        out.append(c)
    return {"values": out}


def _logentry(value: Any, ser: Serializer) -> dict[str, Any]:
    entry = _mapping(value)
    out: dict[str, Any] = {}
    for field in ("message", "formatted"):
        if field in entry:
            out[field] = ser.string(entry[field], ("logentry", field), MAX_MESSAGE_LENGTH)
    if "params" in entry:
        out["params"] = ser.serialize(entry["params"], ("logentry", "params"))
    if "message" not in out:
        out["message"] = out.get("formatted", "")
    return out


def _scrub(event: Event, scrubber: Scrubber, meta: dict[str, Any]) -> None:
    """The parts the serializer's own scrubbing pass did not cover, and the PII rules.

    extra, contexts, breadcrumbs, logentry, frame vars and exception values were scrubbed while
    they were serialized (see Serializer.scrubber).
    """
    if "tags" in event:
        event["tags"] = scrubber.scrub(event["tags"], meta, ("tags",))
    if "transaction" in event:
        event["transaction"] = scrubber.scrub_text(event["transaction"])
    if isinstance(event.get("user"), dict):
        event["user"] = scrubber.scrub_user(event["user"], meta)
        if not event["user"]:
            del event["user"]
    if isinstance(event.get("request"), dict):
        event["request"] = scrubber.scrub_request(event["request"], meta)


# -- the whole thing --------------------------------------------------------------------------


def _base_event(item: CaptureItem, options: Options) -> Event:
    event: Event = {
        "event_id": item.event_id,
        "timestamp": item.timestamp,
        "platform": "python",
        "level": item.level,
        "environment": options.environment,
        "sdk": {
            "name": SDK_NAME,
            "version": __version__,
            "packages": [{"name": "pypi:tripwire", "version": __version__}],
        },
    }
    if options.release:
        event["release"] = options.release
    if options.server_name:
        event["server_name"] = options.server_name
    return event


def build_event(item: CaptureItem, options: Options, scrubber: Scrubber) -> Event | None:
    """The finished event for ``item``, scrubbed by ``scrubber``; None if a scope processor dropped it.

    If building the full event fails (a bug, or an object hostile in a way nothing caught), a minimal
    event — ids, level, release, the exception's type and value or the message — is sent instead,
    marked with ``extra["tripwire.build_error"]``: an error is never lost to a reporting bug.
    """
    try:
        return _build(item, options, scrubber)
    except Exception as exc:
        logger.exception("tripwire: could not build event %s in full; sending a minimal one", item.event_id)
        return _minimal_event(item, options, scrubber, exc)


def _minimal_event(item: CaptureItem, options: Options, scrubber: Scrubber, error: BaseException) -> Event:
    event = _base_event(item, options)
    if item.exc is not None:
        mechanism = {"type": "generic", "handled": True}
        if isinstance(item.mechanism, Mapping):
            mechanism["handled"] = bool(item.mechanism.get("handled", True))
            if isinstance(item.mechanism.get("type"), str):
                mechanism["type"] = item.mechanism["type"]
        value = {
            "type": safe_str(getattr(type(item.exc), "__name__", "Exception"), MAX_NAME_LENGTH),
            "value": scrubber.scrub_text(safe_str(item.exc, MAX_MESSAGE_LENGTH)),
            "mechanism": mechanism,
        }
        event["exception"] = {"values": [value]}
    if item.message is not None:
        message = scrubber.scrub_text(safe_str(item.message, MAX_MESSAGE_LENGTH))
        event["logentry"] = {"message": message, "formatted": message}
    event["extra"] = {"tripwire.build_error": safe_str(f"{type(error).__name__}: {error}", 500)}
    return _budget.enforce(event, options.max_event_bytes, options.max_value_length)


def _build(item: CaptureItem, options: Options, scrubber: Scrubber) -> Event | None:
    state = _state(options)
    meta: dict[str, Any] = {}
    ser = Serializer(meta, max_string=options.max_value_length, scrubber=scrubber)
    event = _base_event(item, options)
    event.update(item.event)
    _apply_scope(event, item)
    contexts = event["contexts"]
    for name, ctx in _static_contexts().items():
        contexts.setdefault(name, dict(ctx))
    trace = {"trace_id": item.trace_id or item.event_id, "span_id": item.span_id or item.event_id[:16]}
    contexts.setdefault("trace", trace)
    if item.thread_id is not None:
        contexts.setdefault("thread", {"id": item.thread_id})
    if item.exc is not None:
        mechanism = dict(item.mechanism) if item.mechanism else {"type": "generic", "handled": True}
        event["exception"] = {"values": _exceptions(item, state, ser, mechanism)}
    if item.message is not None and "logentry" not in event:
        event["logentry"] = {"message": item.message, "formatted": item.message}
    if options.attach_modules and "modules" not in event:
        event["modules"] = dict(installed_modules())
    hint = item.hint
    if item.exc is not None and "exc_info" not in hint:
        hint = {**hint, "exc_info": (type(item.exc), item.exc, item.exc.__traceback__)}
    processed: Any = _run_processors(event, item, hint)
    if processed is None:
        return None
    if not isinstance(processed, dict):
        logger.warning("tripwire: an event processor returned %s; event kept", type(processed).__name__)
        processed = event
    event = _serialize(processed, ser, options)
    _scrub(event, scrubber, meta)
    if meta:
        event["_meta"] = meta
    return _budget.enforce(event, options.max_event_bytes, options.max_value_length)


#: For the client, which re-checks an event that ``before_send`` changed (loaded with this module).
enforce_budget = _budget.enforce

__all__ = ["SDK_NAME", "build_event", "enforce_budget", "installed_modules"]
