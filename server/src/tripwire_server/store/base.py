"""The storage interface of the collector, and the records it returns.

One :class:`Store` per process, shared by the ingest writer, the digester, the JSON API, the CLI and
the web dashboard. Methods are synchronous and thread-safe (each call borrows a connection from the
store's own pool); async code calls them through a thread (Starlette runs sync endpoints in its
thread pool, or use ``anyio.to_thread.run_sync``).

Two implementations live side by side: :mod:`.sqlite` (stdlib ``sqlite3``, WAL) and
:mod:`.postgres` (psycopg 3). :func:`tripwire_server.store.open_store` picks one by URL.

Times are Unix timestamps (float seconds, UTC) everywhere.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

from .alert_records import AlertStore, MonitorStore
from .feedback_records import Feedback
from .log_records import LogQuery, LogRecord
from .perf_records import PerformanceStore
from .profile_records import ProfileStore

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
    """Filters for :meth:`Store.list_issues`; every field narrows the result (None: no filter)."""

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
    """An envelope to be committed to the ingest queue (input of :meth:`Store.enqueue`)."""

    project_id: int
    received_at: float
    kind: str
    body: bytes
    remote_addr: str | None
    #: The file already holding the body (``body`` is then empty): see :meth:`Store.keep_as_file`.
    body_file: str | None = None
    #: The size of the body in ``body_file``.
    body_size: int = 0


class Store(AlertStore, MonitorStore, PerformanceStore, ProfileStore, abc.ABC):
    """Everything the collector keeps, behind one interface.

    Implementations must be safe to call from many threads. Methods raise :class:`NotFound` for
    missing objects and :class:`StoreError` for conflicts.
    """

    #: "sqlite" or "postgresql".
    backend: str

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    def migrate(self) -> list[int]:
        """Apply pending schema migrations (safe with concurrent processes); return applied versions."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The highest applied migration version."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every pooled connection."""

    # -- settings ----------------------------------------------------------------------------

    @abc.abstractmethod
    def get_setting(self, key: str) -> str | None:
        """A persisted collector setting (e.g. ``public_url``), or None."""

    @abc.abstractmethod
    def set_setting(self, key: str, value: str) -> None:
        """Persist a collector setting."""

    # -- users, logins and tokens ------------------------------------------------------------

    @abc.abstractmethod
    def create_user(self, username: str, password: str, *, is_admin: bool = False) -> User:
        """Create a user; the password is stored as an scrypt hash. StoreError if the name exists."""

    @abc.abstractmethod
    def set_password(self, username: str, password: str) -> None:
        """Replace a user's password (and log out their web sessions). NotFound if no such user."""

    @abc.abstractmethod
    def list_users(self) -> list[User]:
        """All users, by name."""

    @abc.abstractmethod
    def get_user(self, username: str) -> User:
        """A user by name. NotFound if missing."""

    @abc.abstractmethod
    def verify_password(self, username: str, password: str) -> User | None:
        """The user if the password matches, else None (constant-time comparison)."""

    @abc.abstractmethod
    def create_web_session(self, user_id: int, ttl: float = 14 * 86400) -> str:
        """Start a dashboard login session; return the secret cookie value (only its hash is kept)."""

    @abc.abstractmethod
    def get_web_session_user(self, token: str) -> User | None:
        """The user of a live dashboard session, or None if unknown or expired."""

    @abc.abstractmethod
    def delete_web_session(self, token: str) -> None:
        """Log a dashboard session out."""

    @abc.abstractmethod
    def create_api_token(self, user_id: int, name: str = "", *, expires_at: float | None = None) -> str:
        """Create an API token for a user; return it (only its hash is kept: show it once)."""

    @abc.abstractmethod
    def issue_api_token(
        self, user_id: int, name: str = "", *, expires_at: float | None = None
    ) -> tuple[ApiToken, str]:
        """Like :meth:`create_api_token`, also returning the listed form (with its id)."""

    @abc.abstractmethod
    def verify_api_token(self, token: str) -> User | None:
        """The user owning an API token that has not expired, or None."""

    @abc.abstractmethod
    def list_api_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        """The tokens of one user (or of everyone), oldest first."""

    @abc.abstractmethod
    def revoke_api_token(self, token_id: int, *, user_id: int | None = None) -> None:
        """Delete a token (only if it belongs to ``user_id`` when given). NotFound otherwise."""

    @abc.abstractmethod
    def take_login_slot(
        self, address: str, account: str, *, limit: int, window: float, now: float
    ) -> int | None:
        """Count one login attempt of ``address`` for ``account`` before its password is checked,
        unless either already has ``limit`` attempts in the last ``window`` seconds (then None).
        Atomic across processes sharing the database. Returns the attempt's id."""

    @abc.abstractmethod
    def release_login_slot(self, slot: int) -> None:
        """Forget one attempt (its password was right); earlier failures stay counted."""

    # -- project keys and members ------------------------------------------------------------

    @abc.abstractmethod
    def list_project_keys(self, project_id: int | None = None) -> list[ProjectKey]:
        """The DSN keys of a project (or of all projects), oldest first."""

    @abc.abstractmethod
    def add_project_key(self, project_id: int) -> ProjectKey:
        """Add a fresh DSN key; it becomes the project's ``public_key``, the old ones stay valid."""

    @abc.abstractmethod
    def revoke_project_key(self, project_id: int, public_key: str) -> None:
        """Remove a key (NotFound if it is not the project's; StoreError if it is the last one)."""

    @abc.abstractmethod
    def add_project_member(self, project_id: int, user_id: int) -> None:
        """Let a user see and triage a project (idempotent)."""

    @abc.abstractmethod
    def remove_project_member(self, project_id: int, user_id: int) -> None:
        """Take a project away from a user. NotFound if they were not a member."""

    @abc.abstractmethod
    def list_project_members(self, project_id: int) -> list[User]:
        """The members of a project, by name (admins see every project without being members)."""

    @abc.abstractmethod
    def member_project_ids(self, user_id: int) -> set[int]:
        """The ids of the projects a user is a member of."""

    # -- projects ----------------------------------------------------------------------------

    @abc.abstractmethod
    def create_project(self, name: str) -> Project:
        """Create a project with a fresh public key. StoreError if the name exists."""

    @abc.abstractmethod
    def list_projects(self) -> list[Project]:
        """All projects, by id."""

    @abc.abstractmethod
    def get_project(self, id_or_name: int | str) -> Project:
        """A project by numeric id or by name. NotFound if missing."""

    @abc.abstractmethod
    def update_project(
        self,
        project_id: int,
        *,
        quota_per_minute: int | None = None,
        retention_days: int | None = None,
        retention_max_events: int | None = None,
        attachment_bytes_per_hour: int | None = None,
        attachment_bytes_total: int | None = None,
    ) -> Project:
        """Set per-project quota/retention/attachment overrides (None leaves a field unchanged;
        -1 clears it back to the collector default)."""

    # -- ingest queue (durable intake) -------------------------------------------------------

    #: Bytes from which this store keeps a queued body in a file of its own rather than in the
    #: queue row (None: it never does).
    file_from: int | None = None

    def keep_as_file(self, data: bytes) -> str | None:
        """Write ``data`` durably to a file of its own, outside any transaction, and return the
        name to queue it under (:attr:`IntakeRow.body_file`); None if this store keeps bodies in
        its rows (then queue ``data`` itself)."""
        return None

    def discard_files(self, names: Sequence[str]) -> None:
        """Remove files from :meth:`keep_as_file` whose rows were never committed."""

    @abc.abstractmethod
    def enqueue(self, rows: Sequence[IntakeRow]) -> None:
        """Commit envelopes to the durable ingest queue in one transaction (group commit)."""

    @abc.abstractmethod
    def queue_depth(self) -> int:
        """Envelopes acknowledged but not yet digested."""

    @abc.abstractmethod
    def digest_batch(self, limit: int, processor: Any) -> int:
        """Claim up to ``limit`` queued envelopes, and no more bytes than the processor's
        ``max_batch_bytes`` (at least one), digest them and delete them in one transaction.

        ``processor`` is a :class:`~.digest_records.Processor`. Several processes may call
        this at once: each envelope is digested exactly once. Returns how many envelopes were done.
        """

    @abc.abstractmethod
    def quarantine(self, queue_id: int, error: str) -> bool:
        """Move a queued envelope the database keeps refusing to ``dead_letters`` (and count it as
        ``envelope``/``digest_failed``). False if it was no longer queued."""

    @abc.abstractmethod
    def dead_letter_count(self) -> int:
        """Envelopes moved aside by :meth:`quarantine`."""

    @abc.abstractmethod
    def attachment_usage(self, project_id: int) -> AttachmentUsage:
        """Attachment bytes the project stored this hour and in all (what its budget is held to)."""

    @abc.abstractmethod
    def add_outcomes(self, rows: Sequence[tuple[int, float, str, str, str, int]]) -> None:
        """Add intake counters: ``(project_id, hour, source, category, reason, quantity)``."""

    # -- issues and events -------------------------------------------------------------------

    @abc.abstractmethod
    def list_issues(self, project_id: int, query: IssueQuery | None = None) -> list[Issue]:
        """Issues of a project matching ``query``, newest activity first by default."""

    @abc.abstractmethod
    def count_issues(self, project_id: int, query: IssueQuery | None = None) -> int:
        """How many issues match ``query`` (ignoring limit/offset)."""

    @abc.abstractmethod
    def get_issue(self, issue_id: int) -> Issue:
        """An issue by id. NotFound if missing."""

    @abc.abstractmethod
    def set_issue_status(
        self, issue_id: int, status: str, *, resolved_in_release: str | None = None
    ) -> Issue:
        """Change an issue's status (unresolved, resolved, ignored); resolving may name a release."""

    @abc.abstractmethod
    def issue_tags(self, issue_id: int, limit_per_key: int = 10) -> list[TagCount]:
        """The most frequent values of each tag key on an issue's events."""

    @abc.abstractmethod
    def issue_activity(self, issue_id: int) -> list[IssueActivity]:
        """The history of an issue, oldest first."""

    @abc.abstractmethod
    def list_events(self, issue_id: int, *, limit: int = 50, offset: int = 0) -> list[EventSummary]:
        """Stored events of an issue, newest first."""

    @abc.abstractmethod
    def latest_event(self, issue_id: int) -> Event | None:
        """The most recent stored event of an issue (None if retention removed them all)."""

    @abc.abstractmethod
    def get_event(self, event_id: str, project_id: int | None = None) -> Event:
        """An event by its 32-hex event_id (in any project when ``project_id`` is None)."""

    @abc.abstractmethod
    def count_events(self, project_id: int | None = None) -> int:
        """Stored events (of one project or of all)."""

    @abc.abstractmethod
    def hourly_counts(
        self, project_id: int, *, issue_id: int | None = None, since: float, until: float
    ) -> list[HourlyCount]:
        """Events digested per hour in ``[since, until)`` (hours without events are omitted)."""

    @abc.abstractmethod
    def list_logs(self, project_id: int, query: LogQuery | None = None) -> list[LogRecord]:
        """Log records of a project matching ``query``, newest first."""

    @abc.abstractmethod
    def list_feedback(
        self, project_id: int, *, issue_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> list[Feedback]:
        """User feedback of a project (or of one issue of it), newest first."""

    @abc.abstractmethod
    def list_attachments(self, project_id: int, event_id: str) -> list[Attachment]:
        """Attachments stored with an event, oldest first."""

    @abc.abstractmethod
    def get_attachment_data(self, project_id: int, attachment_id: int) -> tuple[Attachment, bytes]:
        """An attachment and its bytes. NotFound if missing."""

    # -- release health and outcomes ---------------------------------------------------------

    @abc.abstractmethod
    def list_releases(self, project_id: int) -> list[Release]:
        """Releases seen in events or sessions, newest first, with session totals."""

    @abc.abstractmethod
    def session_buckets(
        self, project_id: int, *, release: str | None = None, since: float = 0.0
    ) -> list[SessionBucket]:
        """Hourly session outcomes (optionally of one release)."""

    @abc.abstractmethod
    def outcomes(self, project_id: int, *, source: str, since: float = 0.0) -> list[OutcomeCount]:
        """Summed counters: ``source="client"`` is what SDKs reported dropping (client reports);
        ``source="intake"`` is what the collector itself accepted, dropped or rejected."""

    # -- retention ---------------------------------------------------------------------------

    @abc.abstractmethod
    def apply_retention(
        self, *, default_days: int, default_max_events: int, now: float, chunk: int = 5000
    ) -> int:
        """Delete events past each project's age/count limits (and what only they used).

        Works in small transactions so ingest is never blocked for long. Returns events deleted.
        """
