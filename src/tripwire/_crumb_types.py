"""Breadcrumb types in BugSnag's vocabulary, shared by the BugSnag reporter and the
``enabled_breadcrumb_types`` option (which a BugSnag configuration names in that vocabulary)."""

from typing import Any

#: BugSnag's breadcrumb types.
BUGSNAG_TYPES = frozenset({"navigation", "request", "process", "log", "user", "state", "error", "manual"})

# Sentry breadcrumb types → BugSnag's; BugSnag's own names pass through, so a breadcrumb written
# for BugSnag keeps its type.
_FROM_SENTRY = {
    **{name: name for name in BUGSNAG_TYPES},
    "http": "request",
    "query": "process",
    "ui": "user",
    "transaction": "process",
    "info": "log",
    "debug": "log",
}


def bugsnag_type(crumb: dict[str, Any]) -> str:
    """The BugSnag type of a (Sentry-shaped) breadcrumb."""
    kind = str(crumb.get("type") or "default")
    mapped = _FROM_SENTRY.get(kind)
    if mapped is not None:
        return mapped
    category = str(crumb.get("category") or "")
    if category.startswith(("log", "logger")) or crumb.get("level") in ("warning", "error"):
        return "log"
    return "manual"
