"""Storage of the collector: a :class:`Store` of repositories, one per concern, over one database
(SQLite and PostgreSQL side by side: :mod:`.sqlite`, :mod:`.postgres`)."""

from __future__ import annotations

from ._store import Store
from .accounts import Accounts
from .alerts import Alerts
from .base import (
    ISSUE_STATUSES,
    MAX_ID,
    ApiToken,
    Attachment,
    AttachmentUsage,
    Event,
    EventSummary,
    HourlyCount,
    IntakeRow,
    Issue,
    IssueActivity,
    IssueQuery,
    NotFound,
    OutcomeCount,
    Project,
    ProjectKey,
    QueuedEnvelope,
    Release,
    SessionBucket,
    StoreError,
    TagCount,
    User,
)
from .database import Database
from .feedback import UserFeedback
from .issues import Issues
from .logs import Logs
from .monitors import Monitors
from .performance import Performance
from .profiles import Profiles
from .queue import IngestQueue
from .releases import Releases
from .retention import Retention

__all__ = [
    "ISSUE_STATUSES",
    "MAX_ID",
    "Accounts",
    "Alerts",
    "ApiToken",
    "Attachment",
    "AttachmentUsage",
    "Database",
    "Event",
    "EventSummary",
    "HourlyCount",
    "IngestQueue",
    "IntakeRow",
    "Issue",
    "IssueActivity",
    "IssueQuery",
    "Issues",
    "Logs",
    "Monitors",
    "NotFound",
    "OutcomeCount",
    "Performance",
    "Profiles",
    "Project",
    "ProjectKey",
    "QueuedEnvelope",
    "Release",
    "Releases",
    "Retention",
    "SessionBucket",
    "Store",
    "StoreError",
    "TagCount",
    "User",
    "UserFeedback",
    "open_store",
]


def open_store(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    """Open (without migrating) the store at ``url``: ``sqlite:///path`` or ``postgresql://...``."""
    # Deferred: psycopg is imported only by a collector that uses PostgreSQL.
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresDatabase

        return Store(PostgresDatabase(url))
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteDatabase

        return Store(SQLiteDatabase(url[len("sqlite:///") - 1 :], synchronous=sqlite_synchronous))
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
