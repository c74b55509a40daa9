"""The records the store's repositories return, and its errors.

Repository methods are synchronous and thread-safe (each call borrows a connection from the
database's own pool); async code calls them through a thread (Starlette runs sync endpoints in its
thread pool, or use ``anyio.to_thread.run_sync``). They raise :class:`NotFound` for missing objects
and :class:`StoreError` for conflicts.

Times are Unix timestamps (float seconds, UTC) everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

IssueStatus = Literal["unresolved", "resolved", "ignored"]
ISSUE_STATUSES: tuple[str, ...] = ("unresolved", "resolved", "ignored")
#: The largest id either database can hold (a signed 64-bit integer): a bigger one names nothing.
MAX_ID = 2**63 - 1


def hour_start(ts: float) -> float:
    """The start of the UTC hour ``ts`` falls in (hourly counters are keyed by it)."""
    return float(int(ts // 3600) * 3600)


class StoreError(Exception):
    """A storage operation failed in a way the caller should report (e.g. a duplicate name)."""


class NotFound(StoreError, LookupError):
    """The requested project, issue, event or user does not exist."""


@dataclasses.dataclass(frozen=True)
class Project:
    """A project: the unit that owns a DSN, issues, events, releases and quotas."""

    id: int
    name: str
    public_key: str
    created_at: float
    #: Per-project overrides; None means "use the collector default".
    quota_per_minute: int | None = None
    retention_days: int | None = None
    retention_max_events: int | None = None
    #: Attachment budget overrides (bytes per hour, bytes stored in total; 0: no limit).
    attachment_bytes_per_hour: int | None = None
    attachment_bytes_total: int | None = None

    def dsn(self, public_url: str) -> str:
        """The DSN an SDK uses to report to this project through ``public_url``."""
        scheme, _, rest = public_url.rstrip("/").partition("://")
        return f"{scheme}://{self.public_key}@{rest}/{self.id}"


@dataclasses.dataclass(frozen=True)
class User:
    """A dashboard/API user."""

    id: int
    username: str
    is_admin: bool
    created_at: float


@dataclasses.dataclass(frozen=True)
class ApiToken:
    """An API token as listed: never its secret (only a hash of it is kept)."""

    id: int
    user_id: int
    username: str
    name: str
    created_at: float
    #: None: never expires.
    expires_at: float | None


@dataclasses.dataclass(frozen=True)
class ProjectKey:
    """One DSN public key of a project; a project has one or more (rotation overlaps them)."""

    project_id: int
    public_key: str
    created_at: float

    def dsn(self, public_url: str) -> str:
        """The DSN that uses this key."""
        scheme, _, rest = public_url.rstrip("/").partition("://")
        return f"{scheme}://{self.public_key}@{rest}/{self.project_id}"


@dataclasses.dataclass(frozen=True)
class Issue:
    """A group of events that share one grouping hash."""

    id: int
    project_id: int
    grouping_version: str
    grouping_hash: str
    #: How the hash was made, for the "why grouped" view: ``{"strategy": ..., "components": [...],
    #: "description": "..."}``.
    grouping_explanation: dict[str, Any]
    title: str
    culprit: str
    type: str
    value: str
    level: str
    status: IssueStatus
    #: Set when resolved "in release X": events from releases before X do not reopen the issue.
    resolved_in_release: str | None
    #: True once a resolved issue came back (cleared when resolved again).
    regressed: bool
    first_seen: float
    last_seen: float
    event_count: int
    first_release: str | None
    last_release: str | None


@dataclasses.dataclass(frozen=True)
class EventSummary:
    """One stored event, without its payload."""

    id: int
    project_id: int
    event_id: str
    issue_id: int
    timestamp: float
    received_at: float
    level: str
    title: str
    release: str | None
    environment: str | None
    grouping_hash: str


@dataclasses.dataclass(frozen=True)
class Event(EventSummary):
    """One stored event with its full normalized payload (the Sentry event schema)."""

    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class IssueActivity:
    """One turning point in an issue's history (first seen, resolved, regressed, ...)."""

    issue_id: int
    at: float
    kind: str
    detail: str


@dataclasses.dataclass(frozen=True)
class TagCount:
    """How often a tag value was seen on an issue's events."""

    key: str
    value: str
    count: int


@dataclasses.dataclass(frozen=True)
class Release:
    """A release seen in events or sessions, with its release-health numbers."""

    project_id: int
    version: str
    first_seen: float
    last_seen: float
    event_count: int
    sessions: int
    sessions_healthy: int
    sessions_errored: int
    sessions_abnormal: int
    sessions_crashed: int

    @property
    def crash_free_rate(self) -> float | None:
        """Share of sessions that did not crash (None when no session was reported)."""
        if self.sessions <= 0:
            return None
        return max(0.0, 1.0 - self.sessions_crashed / self.sessions)


@dataclasses.dataclass(frozen=True)
class SessionBucket:
    """Session outcomes of one release and environment in one hour."""

    release: str
    environment: str
    hour: float
    started: int
    healthy: int
    errored: int
    abnormal: int
    crashed: int


@dataclasses.dataclass(frozen=True)
class HourlyCount:
    """Number of events digested in the hour that starts at ``hour``."""

    hour: float
    count: int


@dataclasses.dataclass(frozen=True)
class OutcomeCount:
    """A counter of what happened to items: client-side drops (client reports) or our own intake."""

    category: str
    reason: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class Attachment:
    """A file sent with an event (``attachment`` envelope item)."""

    id: int
    project_id: int
    event_id: str
    filename: str
    content_type: str
    attachment_type: str
    size: int
    received_at: float


@dataclasses.dataclass(frozen=True)
class AttachmentUsage:
    """Attachment bytes a project stored: in the hour that starts at ``hour``, and in all."""

    hour: float
    hour_bytes: int
    stored_bytes: int
    #: The hour in which an attachment was dropped for the hourly budget (0: none).
    full_hour: float = 0.0
    #: An attachment was dropped for the total budget since retention last freed room.
    total_full: bool = False

    def used_in(self, hour: float) -> int:
        """Bytes stored in the hour that starts at ``hour`` (0 once a new hour has begun)."""
        return self.hour_bytes if hour <= self.hour else 0

    def hour_used_up(self, hour: float, per_hour: int) -> bool:
        """True if the hour starting at ``hour`` has no room left (or the digest found none)."""
        return per_hour > 0 and (self.used_in(hour) >= per_hour or self.full_hour >= hour)

    def total_used_up(self, total: int) -> bool:
        """True if the total has no room left (or the digest found none)."""
        return total > 0 and (self.stored_bytes >= total or self.total_full)


@dataclasses.dataclass(frozen=True)
class IssueQuery:
    """Filters for :meth:`~.issues.Issues.list_issues`; every field narrows the result (None: no filter)."""

    text: str | None = None
    status: str | None = None
    level: str | None = None
    release: str | None = None
    environment: str | None = None
    #: ``(key, value)`` pairs that all must be present among the issue's tags.
    tags: tuple[tuple[str, str], ...] = ()
    sort: Literal["last_seen", "first_seen", "event_count"] = "last_seen"
    limit: int = 100
    offset: int = 0


@dataclasses.dataclass(frozen=True)
class QueuedEnvelope:
    """One acknowledged envelope waiting in the durable ingest queue."""

    id: int
    project_id: int
    received_at: float
    #: "envelope", or "envelope:<content-encoding>" when ``body`` is kept compressed as received.
    kind: str
    body: bytes
    remote_addr: str | None


@dataclasses.dataclass
class IntakeRow:
    """An envelope to be committed to the ingest queue (input of :meth:`~.queue.IngestQueue.enqueue`)."""

    project_id: int
    received_at: float
    kind: str
    body: bytes
    remote_addr: str | None
    #: The file already holding the body (``body`` is then empty): see
    #: :meth:`~.queue.IngestQueue.keep_as_file`.
    body_file: str | None = None
    #: The size of the body in ``body_file``.
    body_size: int = 0
