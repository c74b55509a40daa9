"""Types for reporter and plug-in authors: import them from here, never from a private module.

>>> from tripwire.types import Event, Hint
>>> def before_send(event: Event, hint: Hint) -> Event | None:
...     return None if event.get("level") == "debug" else event

Events, breadcrumbs and hints are plain dicts (events in the Sentry event schema, see docs/events.md),
so the aliases below are ``dict[str, Any]`` for a type checker and cost nothing at run time.
"""

from __future__ import annotations

from ._types import (
    BeforeBreadcrumb,
    BeforeSend,
    Breadcrumb,
    DropRecorder,
    Event,
    EventProcessor,
    Hint,
    Level,
    Mechanism,
    SessionBatch,
)
from .reporters.base import Reporter

__all__ = [
    "BeforeBreadcrumb",
    "BeforeSend",
    "Breadcrumb",
    "DropRecorder",
    "Event",
    "EventProcessor",
    "Hint",
    "Level",
    "Mechanism",
    "Reporter",
    "SessionBatch",
]
