"""What the caller hands to the worker: a cheap snapshot, no formatting, no I/O."""

from __future__ import annotations

from types import FrameType
from typing import Any

from ._scope import ScopeData
from ._types import Event, Hint, Mechanism


class CaptureItem:
    """One capture, as taken on the calling thread.

    ``exc`` keeps its traceback (and so the frames and their locals) alive until the worker has built
    the event; the queue is bounded, so this is bounded too.

    A plain slotted class rather than a dataclass: ``dataclasses`` pulls in ``inspect`` (~10 ms of
    import time) and ``import tripwire`` must stay cheap.
    """

    __slots__ = (
        "event",
        "event_id",
        "exc",
        "hint",
        "level",
        "live_locals",
        "mechanism",
        "message",
        "overrides",
        "repeats",
        "scope",
        "span_id",
        "thread_id",
        "timestamp",
        "trace_id",
    )

    def __init__(
        self,
        event_id: str,
        timestamp: float,
        level: str,
        scope: ScopeData,
        exc: BaseException | None = None,
        mechanism: Mechanism | None = None,
        message: str | None = None,
        event: Event | None = None,
        overrides: dict[str, Any] | None = None,
        hint: Hint | None = None,
        thread_id: int | None = None,
        live_locals: dict[FrameType, dict[str, Any]] | None = None,
        trace_id: str | None = None,
        repeats: int = 0,
        span_id: str | None = None,
    ) -> None:
        self.event_id = event_id
        self.timestamp = timestamp
        self.level = level
        self.scope = scope
        self.exc = exc
        self.mechanism = mechanism
        self.message = message
        #: Event fields an integration sets directly (``logger``, ``logentry``, ``request``, ...).
        self.event: Event = event if event is not None else {}
        #: Keyword arguments given to capture_*: tags, extras, contexts, user, level, fingerprint.
        self.overrides: dict[str, Any] = overrides if overrides is not None else {}
        self.hint: Hint = hint if hint is not None else {}
        self.thread_id = thread_id
        #: Shallow copies of the locals of traceback frames still running at capture (see _stacktrace).
        self.live_locals = live_locals
        #: The unit of work's trace id (``contexts.trace``).
        self.trace_id = trace_id
        #: The active span's id when it was captured inside a sampled span (``contexts.trace``).
        self.span_id = span_id
        #: Earlier occurrences of the same error that the repeat limit counted but did not send.
        self.repeats = repeats
