"""Storage of the collector: one interface (:mod:`.base`), SQLite and PostgreSQL side by side."""

from __future__ import annotations

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
    Store,
    StoreError,
    TagCount,
    User,
)

__all__ = [
    "ISSUE_STATUSES",
    "MAX_ID",
    "ApiToken",
    "Attachment",
    "AttachmentUsage",
    "Event",
    "EventSummary",
    "HourlyCount",
    "IntakeRow",
    "Issue",
    "IssueActivity",
    "IssueQuery",
    "NotFound",
    "OutcomeCount",
    "Project",
    "ProjectKey",
    "QueuedEnvelope",
    "Release",
    "SessionBucket",
    "Store",
    "StoreError",
    "TagCount",
    "User",
    "open_store",
]


def open_store(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    """Open (without migrating) the store at ``url``: ``sqlite:///path`` or ``postgresql://...``."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url[len("sqlite:///") - 1 :], synchronous=sqlite_synchronous)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")
