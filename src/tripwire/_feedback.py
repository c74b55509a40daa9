"""``tripwire.capture_feedback``: what an end user wrote, sent as a Sentry ``feedback`` item."""

from __future__ import annotations

import time
from typing import Any

from . import _deferred, _globals
from ._log import logger

__all__ = ["capture_feedback"]

#: Sentry's limit on a feedback message; longer text is cut, not refused.
MAX_MESSAGE = 4096


def capture_feedback(
    message: str,
    email: str | None = None,
    name: str | None = None,
    associated_event_id: str | None = None,
) -> str | None:
    """Send user feedback, as ``sentry_sdk.capture_feedback`` and ``Sentry.captureFeedback`` do.

    ``associated_event_id`` ties it to an error (``tripwire.last_event_id()`` after capturing one):
    the collector shows it on that error's issue. Returns the feedback's id; None when tripwire is
    not initialised, the message is empty, or it could not be queued (counted in ``stats()``).
    Never raises.

    >>> event_id = tripwire.capture_exception()  # doctest: +SKIP
    >>> tripwire.capture_feedback("The checkout button did nothing", email="ada@example.com",
    ...                           associated_event_id=event_id)  # doctest: +SKIP
    """
    client = _globals.client
    if client is None:
        return None
    try:
        text = str(message).strip()[:MAX_MESSAGE]
        if not text:
            return None
        context: dict[str, Any] = {"message": text, "source": "api"}
        if email:
            context["contact_email"] = str(email)[:256]
        if name:
            context["name"] = str(name)[:256]
        if associated_event_id:
            context["associated_event_id"] = str(associated_event_id)
        options = client.options
        feedback_id = _deferred.uuid4().replace("-", "")
        payload: dict[str, Any] = {
            "event_id": feedback_id,
            "timestamp": time.time(),
            "platform": "python",
            "level": "info",
            "contexts": {"feedback": context},
        }
        if options.release:
            payload["release"] = options.release
        if options.environment:
            payload["environment"] = options.environment
        return feedback_id if client.submit_feedback(payload) else None
    except Exception:  # feedback is worth less than the app that asks for it
        logger.exception("tripwire: could not capture feedback")
        return None
