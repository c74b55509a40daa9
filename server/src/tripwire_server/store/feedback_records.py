"""Records of user feedback: what the digest writes and what pages and the API read."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class FeedbackRow:
    """One piece of feedback to store (from a ``feedback`` or a legacy ``user_report`` item)."""

    project_id: int
    #: Unique per project: the feedback event's id, or ``report:<event id>`` for a user report.
    feedback_id: str
    message: str
    name: str | None
    email: str | None
    #: The error event it is about, if it names one.
    event_id: str | None
    url: str | None
    #: ``feedback`` (captureFeedback, the widget) or ``user_report`` (the legacy endpoint).
    source: str
    received_at: float


@dataclasses.dataclass(frozen=True)
class Feedback:
    """Stored feedback, with the issue of its event when that event is stored."""

    id: int
    project_id: int
    message: str
    name: str | None
    email: str | None
    event_id: str | None
    issue_id: int | None
    url: str | None
    source: str
    received_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message": self.message,
            "email": self.email,
            "name": self.name,
            "event_id": self.event_id,
            "issue_id": self.issue_id,
            "url": self.url,
            "source": self.source,
            "received_at": self.received_at,
        }
