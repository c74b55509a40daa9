"""What the capture functions' extra keywords mean, for code written against other SDKs.

BugSnag's ``notify()`` keywords (``severity``, ``metadata``, ``context``, ``grouping_hash``) map onto
tripwire's scope keywords, and the session an error counted on goes into the event for backends
that link errors to sessions (BugSnag). Pure functions, run on the caller, cheap when unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._sessions import CRASHED
from ._types import Event

#: BugSnag's ``notify()`` keywords, taken by capture_* as they are: ``severity`` → level,
#: ``metadata`` tabs → contexts (other values → extras), ``context`` → the event's transaction
#: (what BugSnag shows as its context), ``grouping_hash`` → fingerprint.
ALIASES = frozenset({"severity", "metadata", "context", "grouping_hash"})
_SEVERITIES = {"error": "error", "warning": "warning", "info": "info"}


def translate_aliases(scope_kwargs: dict[str, Any], event: Event | None) -> Event | None:
    severity = scope_kwargs.pop("severity", None)
    if severity is not None and "level" not in scope_kwargs:
        scope_kwargs["level"] = _SEVERITIES.get(str(severity), "error")
    grouping_hash = scope_kwargs.pop("grouping_hash", None)
    if isinstance(grouping_hash, str) and grouping_hash and "fingerprint" not in scope_kwargs:
        scope_kwargs["fingerprint"] = [grouping_hash]
    metadata = scope_kwargs.pop("metadata", None)
    if isinstance(metadata, Mapping):
        contexts = dict(scope_kwargs.get("contexts") or {})
        extras = dict(scope_kwargs.get("extras") or {})
        for tab, value in metadata.items():
            if isinstance(value, Mapping):
                contexts[str(tab)] = dict(value)
            else:
                extras[str(tab)] = value
        if contexts:
            scope_kwargs["contexts"] = contexts
        if extras:
            scope_kwargs["extras"] = extras
    context = scope_kwargs.pop("context", None)
    if isinstance(context, str) and context:
        event = {**(event or {}), "transaction": context}
    return event


def with_session(event: Event | None, session: Any) -> Event | None:
    """The session an error counted on, as ``contexts.session`` (BugSnag links its errors to
    sessions by it; a Sentry server shows it as a context)."""
    sid = getattr(session, "sid", None)
    started = getattr(session, "started", None)
    if isinstance(sid, str):
        unhandled = 1 if getattr(session, "status", "") == "crashed" else 0
        handled = max(0, int(getattr(session, "errors", 0)) - unhandled)
    elif isinstance(started, float):
        # A request session (counted in aggregate): an id stable for the request, made only here,
        # on the error path, from the connection's identity and start.
        sid = f"{id(session):016x}{int(started * 1e6) & (2**64 - 1):016x}"
        unhandled = 1 if getattr(session, "outcome", None) == CRASHED else 0
        handled = 1 - unhandled
    else:
        return event
    context = {"id": sid, "started": started, "handled": handled, "unhandled": unhandled}
    event = dict(event or {})
    event["contexts"] = {**(event.get("contexts") or {}), "session": context}
    return event
