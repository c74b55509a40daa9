"""Helpers shared by the SDK core tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import tripwire.testing


def one_event(action: Callable[[], Any], **options: Any) -> dict[str, Any]:
    """Run ``action`` with a capturing client built from ``options``; the single event it produced."""
    with tripwire.testing.capture_events(**options) as events:
        action()
    assert len(events) == 1, f"expected one event, got {len(events)}"
    event = events[0]
    # Every event must be plain, strict JSON.
    json.dumps(event, allow_nan=False)
    return event


def raise_and_capture(exc: BaseException, **kwargs: Any) -> None:
    try:
        raise exc
    except BaseException:
        tripwire.capture_exception(**kwargs)


def frames(event: dict[str, Any], index: int = -1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = event["exception"]["values"][index]["stacktrace"]["frames"]
    return found
