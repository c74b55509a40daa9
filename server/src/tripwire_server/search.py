"""The issue search language shared by the API and the dashboard.

``is:resolved level:error release:1.2 environment:prod browser:"Chrome 120" timeout db`` means:
status resolved, level error, in release 1.2 and environment prod, tag ``browser`` is
``Chrome 120``, and "timeout db" appears in the title or culprit.
"""

from __future__ import annotations

import dataclasses
import re

from .store.base import ISSUE_STATUSES, IssueQuery

_TOKEN = re.compile(r'(\w[\w.\-]*):"((?:[^"\\]|\\.)*)"|(\w[\w.\-]*):(\S+)|"((?:[^"\\]|\\.)*)"|(\S+)')
_STATUS_ALIASES = {
    "unresolved": "unresolved",
    "resolved": "resolved",
    "ignored": "ignored",
    "muted": "ignored",
}


def parse_query(text: str, base: IssueQuery | None = None) -> IssueQuery:
    """An :class:`IssueQuery` from a search string (fields of ``base`` are kept unless overridden)."""
    q = base or IssueQuery()
    words: list[str] = []
    tags = list(q.tags)
    changes: dict[str, object] = {}
    for m in _TOKEN.finditer(text or ""):
        key, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if key is None:
            words.append(m.group(5) if m.group(5) is not None else m.group(6))
            continue
        key = key.lower()
        if key == "is" and value.lower() in _STATUS_ALIASES:
            changes["status"] = _STATUS_ALIASES[value.lower()]
        elif key == "is" and value.lower() == "all":
            changes["status"] = None
        elif key == "level":
            changes["level"] = value.lower()
        elif key == "release":
            changes["release"] = value
        elif key in ("environment", "env"):
            changes["environment"] = value
        else:
            tags.append((key, value))
    if words:
        changes["text"] = " ".join(words)
    return dataclasses.replace(q, tags=tuple(tags), **changes)  # type: ignore[arg-type]


__all__ = ["ISSUE_STATUSES", "parse_query"]
