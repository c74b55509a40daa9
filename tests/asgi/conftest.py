"""Fixtures for the ASGI tests: real servers on 127.0.0.1 and a capturing tripwire client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents, CaptureReporter

from .servers import SERVERS


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    """A tripwire client with release health that keeps its events in memory."""
    captured = CapturedEvents()
    tripwire.init(
        reporters=[CaptureReporter(captured)],
        release="1.0",
        environment="test",
        include_local_variables=False,
    )
    yield captured


@pytest.fixture(params=SERVERS)
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def session_totals(events: CapturedEvents) -> dict[str, int]:
    totals: dict[str, int] = {}
    for batch in events.sessions:
        for item in batch.aggregates:
            for aggregate in item["aggregates"]:
                for key, value in aggregate.items():
                    if key != "started":
                        totals[key] = totals.get(key, 0) + value
    return totals


def wait_sessions(events: CapturedEvents, total: int, timeout: float = 10.0) -> dict[str, int]:
    """Flush until ``total`` ended sessions arrived (a request's session ends after its response)."""
    deadline = time.monotonic() + timeout
    while True:
        tripwire.flush(5)
        totals = session_totals(events)
        if sum(totals.values()) >= total or time.monotonic() > deadline:
            return totals
        time.sleep(0.02)


def settle(events: CapturedEvents, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Wait for ``count`` events, then flush, so that anything extra would show up too."""
    events.wait_for(count, timeout)
    time.sleep(0.05)
    tripwire.flush(5)
    return list(events)
