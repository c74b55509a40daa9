"""What the caller hands to the worker: a cheap snapshot, no formatting, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from ._scope import ScopeData
from ._types import Event, Hint, Mechanism


@dataclass(slots=True)
class CaptureItem:
    """One capture, as taken on the calling thread.

    ``exc`` keeps its traceback (and so the frames and their locals) alive until the worker has built
    the event; the queue is bounded, so this is bounded too.
    """

    event_id: str
    timestamp: float
    level: str
    scope: ScopeData
    exc: BaseException | None = None
    mechanism: Mechanism | None = None
    message: str | None = None
    #: Event fields an integration sets directly (``logger``, ``logentry``, ``request``, ...).
    event: Event = field(default_factory=dict)
    #: Keyword arguments given to capture_*: tags, extras, contexts, user, level, fingerprint.
    overrides: dict[str, Any] = field(default_factory=dict)
    hint: Hint = field(default_factory=dict)
    thread_id: int | None = None
    #: Shallow copies of the locals of traceback frames still running at capture (see _stacktrace).
    live_locals: dict[FrameType, dict[str, Any]] | None = None
    #: The unit of work's trace id (``contexts.trace``).
    trace_id: str | None = None
