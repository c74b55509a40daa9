"""What digesting one envelope produces: plain records the store writes in one transaction.

The digester (:mod:`tripwire_server.digest`) turns queued envelopes into these records without
touching the database; :meth:`IngestQueue.digest_batch
<tripwire_server.store.queue.IngestQueue.digest_batch>` then writes the records of the envelopes it owns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from ..performance.model import Transaction
from ..profiling.model import Profile, TransactionWindow
from .base import QueuedEnvelope
from .feedback_records import FeedbackRow
from .log_records import LogRow


@dataclasses.dataclass
class DigestedEvent:
    """A normalized, grouped event ready to store."""

    project_id: int
    event_id: str
    timestamp: float
    received_at: float
    level: str
    title: str
    culprit: str
    type: str
    value: str
    release: str | None
    environment: str | None
    grouping_version: str
    grouping_hash: str
    grouping_explanation: dict[str, Any]
    tags: list[tuple[str, str]]
    #: zlib-compressed JSON of the normalized event.
    data: bytes
    #: This event plus the occurrences an SDK counted but did not send (``contexts.repeats``).
    occurrences: int = 1
    #: ``contexts.trace``: links the event to its trace (docs/performance.md).
    trace_id: str | None = None
    span_id: str | None = None
    #: The key under the previous grouping version: an issue created before joins it.
    legacy_hash: str | None = None


@dataclasses.dataclass
class SessionCount:
    """Session outcomes to add to one (release, environment, hour) bucket."""

    project_id: int
    release: str
    environment: str
    hour: float
    started: int = 0
    healthy: int = 0
    errored: int = 0
    abnormal: int = 0
    crashed: int = 0


@dataclasses.dataclass
class OutcomeRow:
    """A counter increment: ``source`` is "client" (client reports) or "intake" (our own)."""

    project_id: int
    hour: float
    source: str
    category: str
    reason: str
    quantity: int


@dataclasses.dataclass
class AttachmentRow:
    """An attachment kept with its event."""

    project_id: int
    event_id: str
    filename: str
    content_type: str
    attachment_type: str
    data: bytes
    received_at: float
    #: The file holding the bytes when they are kept out of the database (``data`` is then empty).
    data_file: str | None = None
    #: The size of the bytes (of ``data``, or of ``data_file``).
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self.data)


@dataclasses.dataclass
class CheckInRow:
    """A cron monitor check-in (``check_in`` item); ``config`` creates or updates the monitor."""

    project_id: int
    slug: str
    check_in_id: str
    status: str
    duration: float | None
    environment: str | None
    release: str | None
    timestamp: float
    config: dict[str, Any] | None = None


@dataclasses.dataclass
class EnvelopeResult:
    """Everything one queued envelope contributes."""

    queue_id: int
    events: list[DigestedEvent] = dataclasses.field(default_factory=list)
    sessions: list[SessionCount] = dataclasses.field(default_factory=list)
    outcomes: list[OutcomeRow] = dataclasses.field(default_factory=list)
    attachments: list[AttachmentRow] = dataclasses.field(default_factory=list)
    checkins: list[CheckInRow] = dataclasses.field(default_factory=list)
    #: Transactions (from ``transaction`` and ``span`` items), see store/performance.py.
    transactions: list[Transaction] = dataclasses.field(default_factory=list)
    feedback: list[FeedbackRow] = dataclasses.field(default_factory=list)
    logs: list[LogRow] = dataclasses.field(default_factory=list)
    #: ``(project id, profile)`` of ``profile`` and ``profile_chunk`` items, see store/profiles.py.
    profiles: list[tuple[int, Profile]] = dataclasses.field(default_factory=list)
    #: Transactions that ran under a continuous profiler (chunks' samples are attributed to them).
    profile_windows: list[TransactionWindow] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class AttachmentBudget:
    """Attachment bytes a project may store: per hour (by arrival) and in total; 0: no limit."""

    per_hour: int
    total: int


class Processor(Protocol):
    """Turns queued envelopes into records (pure CPU work, no database access)."""

    #: The collector's default attachment budget, for projects without their own.
    attachment_budget: AttachmentBudget
    #: Bytes one batch may hold; the store reads no more queued bytes than this (but at least one
    #: envelope) before calling :meth:`prepare`.
    max_batch_bytes: int

    def prepare(self, rows: Sequence[QueuedEnvelope]) -> list[EnvelopeResult]:
        """One result per row of a prefix of ``rows``, in order; never raises for bad input.

        It stops early once its results hold ``max_batch_bytes``: the rows after that prefix
        stay queued for the next batch.
        """
        ...
