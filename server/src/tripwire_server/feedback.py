"""User feedback from envelope items: what an end user wrote about an error, kept as it came.

Two protocols carry it:

- ``feedback`` (current SDKs' ``captureFeedback`` and the feedback widget): an event whose
  ``contexts.feedback`` holds ``message``, ``contact_email``, ``name``, ``url`` and, when it is
  about an error, ``associated_event_id``;
- ``user_report`` (the legacy user-report API): ``event_id`` (the error), ``name``, ``email`` and
  ``comments``. One report per error: a second one for the same error is a resend.
"""

from __future__ import annotations

from typing import Any

from .normalize import normalize_event_id, trim
from .store.feedback_records import FeedbackRow

#: Sentry's own limit on a feedback message.
MAX_MESSAGE = 4096


def _text(value: Any, limit: int) -> str | None:
    return trim(value, limit).strip() or None if isinstance(value, str) else None


def from_feedback(data: Any, project_id: int, received_at: float) -> FeedbackRow:
    """A ``feedback`` item payload as a row (ValueError if it holds no message)."""
    if not isinstance(data, dict):
        raise ValueError("feedback payload must be a JSON object")
    context = (data.get("contexts") or {}).get("feedback")
    if not isinstance(context, dict):
        raise ValueError("feedback without contexts.feedback")
    message = _text(context.get("message"), MAX_MESSAGE)
    if not message:
        raise ValueError("feedback without a message")
    feedback_id = normalize_event_id(data.get("event_id"))
    if feedback_id is None:
        raise ValueError("feedback without an event_id")
    user: dict[str, Any] = data["user"] if isinstance(data.get("user"), dict) else {}
    return FeedbackRow(
        project_id=project_id,
        feedback_id=feedback_id,
        message=message,
        name=_text(context.get("name") or user.get("name") or user.get("username"), 256),
        email=_text(context.get("contact_email") or user.get("email"), 256),
        event_id=normalize_event_id(context.get("associated_event_id")),
        url=_text(context.get("url"), 1024),
        source="feedback",
        received_at=received_at,
    )


def from_user_report(data: Any, project_id: int, received_at: float) -> FeedbackRow:
    """A legacy ``user_report`` item payload as a row (ValueError if it is not one)."""
    if not isinstance(data, dict):
        raise ValueError("user_report payload must be a JSON object")
    event_id = normalize_event_id(data.get("event_id"))
    message = _text(data.get("comments"), MAX_MESSAGE)
    if event_id is None or not message:
        raise ValueError("user_report needs an event_id and comments")
    return FeedbackRow(
        project_id=project_id,
        feedback_id=f"report:{event_id}",
        message=message,
        name=_text(data.get("name"), 256),
        email=_text(data.get("email"), 256),
        event_id=event_id,
        url=None,
        source="user_report",
        received_at=received_at,
    )
