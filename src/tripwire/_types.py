"""Type aliases for the shapes that cross module boundaries and user hooks.

The internal event is a plain ``dict`` in the Sentry event schema
(https://develop.sentry.dev/sdk/data-model/event-payloads/): every Sentry-compatible server
understands it as is, and other backends (BugSnag, logging) map from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# The aliases stay importable at run time, but without importing typing (3 ms of CPU, see
# _namedtuple.py): what only typing provides is quoted, and type checkers read the quotes.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, TypeAlias

Event: TypeAlias = dict[str, "Any"]
"""An event in the Sentry event schema (``event_id``, ``timestamp``, ``exception``, ...)."""

Breadcrumb: TypeAlias = dict[str, "Any"]
"""A breadcrumb: ``{"timestamp", "type", "category", "message", "level", "data"}``."""

Hint: TypeAlias = dict[str, "Any"]
"""What a hook gets besides the event: ``exc_info`` for exceptions, ``log_record`` for logging."""

Level: TypeAlias = 'Literal["fatal", "error", "warning", "info", "debug"]'
LEVELS: frozenset[str] = frozenset({"fatal", "error", "warning", "info", "debug"})

BeforeSend: TypeAlias = Callable[[Event, Hint], "Event | None"]
"""``before_send(event, hint) -> event | None``: change an event, or return None to drop it.

Runs on the delivery worker, after scrubbing. An exception inside it is logged and the event goes on
unchanged.
"""

BeforeBreadcrumb: TypeAlias = Callable[[Breadcrumb, Hint], "Breadcrumb | None"]
"""``before_breadcrumb(crumb, hint) -> crumb | None``: change a breadcrumb, or return None to drop it.

Runs on the caller when the breadcrumb is added, so keep it cheap.
"""

EventProcessor: TypeAlias = Callable[[Event, Hint], "Event | None"]
"""Attached to a scope by integrations; runs when the event is built (off the caller)."""

Mechanism: TypeAlias = Mapping[str, "Any"]
"""How an exception was caught: ``{"type": "asgi", "handled": False}``."""


class SessionBatch:
    """Release-health data for reporters, in the Sentry shape.

    ``aggregates`` are ``sessions`` items (``{"attrs": {release, environment}, "aggregates": [...]}``),
    ``updates`` are single ``session`` items (application sessions of scripts and workers).
    """

    __slots__ = ("aggregates", "updates")

    def __init__(
        self,
        aggregates: list[dict[str, Any]] | None = None,
        updates: list[dict[str, Any]] | None = None,
    ) -> None:
        self.aggregates: list[dict[str, Any]] = aggregates if aggregates is not None else []
        self.updates: list[dict[str, Any]] = updates if updates is not None else []

    def __repr__(self) -> str:
        return f"SessionBatch(aggregates={self.aggregates!r}, updates={self.updates!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionBatch):
            return NotImplemented
        return (self.aggregates, self.updates) == (other.aggregates, other.updates)

    __hash__ = None  # type: ignore[assignment]


class CheckIn:
    """A cron monitor check-in on its way to the reporters (the Sentry ``check_in`` item payload)."""

    __slots__ = ("payload",)

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"CheckIn({self.payload!r})"


class Feedback(CheckIn):
    """User feedback on its way to the reporters (the Sentry ``feedback`` item payload)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Feedback({self.payload!r})"
