"""Type aliases for the shapes that cross module boundaries and user hooks (public: ``tripwire.types``).

The internal event is a plain ``dict`` in the Sentry event schema
(https://develop.sentry.dev/sdk/data-model/event-payloads/): every Sentry-compatible server
understands it as is, and other backends (BugSnag, logging) map from it.
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple would compile each string
# annotation into a ForwardRef at import (measured: 0.5 ms for Options alone).

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias

Event: TypeAlias = dict[str, Any]
"""An event in the Sentry event schema (``event_id``, ``timestamp``, ``exception``, ...)."""

Breadcrumb: TypeAlias = dict[str, Any]
"""A breadcrumb: ``{"timestamp", "type", "category", "message", "level", "data"}``."""

Hint: TypeAlias = dict[str, Any]
"""What a hook gets besides the event: ``exc_info`` for exceptions, ``log_record`` for logging."""

Level: TypeAlias = Literal["fatal", "error", "warning", "info", "debug"]
LEVELS: frozenset[str] = frozenset({"fatal", "error", "warning", "info", "debug"})

BeforeSend: TypeAlias = Callable[[Event, Hint], Event | None]
"""``before_send(event, hint) -> event | None``: change an event, or return None to drop it.

Runs on the delivery worker, after scrubbing. An exception inside it is logged and the event goes on
unchanged.
"""

BeforeBreadcrumb: TypeAlias = Callable[[Breadcrumb, Hint], Breadcrumb | None]
"""``before_breadcrumb(crumb, hint) -> crumb | None``: change a breadcrumb, or return None to drop it.

Runs on the caller when the breadcrumb is added, so keep it cheap.
"""

EventProcessor: TypeAlias = Callable[[Event, Hint], Event | None]
"""Attached to a scope by integrations; runs when the event is built (off the caller)."""

Mechanism: TypeAlias = Mapping[str, Any]
"""How an exception was caught: ``{"type": "asgi", "handled": False}``."""


class SessionBatch(NamedTuple):
    """Release-health data for reporters, in the Sentry shape.

    ``aggregates`` are ``sessions`` items (``{"attrs": {release, environment}, "aggregates": [...]}``),
    ``updates`` are single ``session`` items (application sessions of scripts and workers).
    """

    aggregates: Sequence[dict[str, Any]] = ()
    updates: Sequence[dict[str, Any]] = ()


class DropRecorder(Protocol):
    """What a reporter gets in ``Reporter.bind(stats)``: where it counts what it could not deliver.

    ``reason`` is one of the Sentry client-report reasons tripwire uses (``queue_full``,
    ``rate_limited``, ``network_error``, ``rejected``, ``too_large``, ...); ``category`` is ``error`` or
    ``session``; ``reporter`` is the reporter's ``name``. The counts show in ``tripwire.stats()`` and
    are sent as client reports.
    """

    def record(
        self, reason: str, category: str = "error", quantity: int = 1, reporter: str | None = None
    ) -> None: ...

    def record_sent(self, reporter: str, quantity: int = 1) -> None: ...


# Their public home, in reprs, docs and pickles (tripwire.types re-exports them).
SessionBatch.__module__ = DropRecorder.__module__ = "tripwire.types"


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


class ProfileChunk:
    """A continuous-profiling chunk on its way to the worker (built into a ``profile_chunk`` item there).

    ``recording`` is the profiler's :class:`~tripwire._profiler.Recording` (typed loosely here: this
    module is below the profiler, which is imported only when profiling is configured).
    """

    __slots__ = ("chunk_id", "profiler_id", "recording")

    def __init__(self, profiler_id: str, chunk_id: str, recording: Any) -> None:
        self.profiler_id = profiler_id
        self.chunk_id = chunk_id
        self.recording = recording

    def __repr__(self) -> str:
        return f"ProfileChunk({self.chunk_id!r})"
