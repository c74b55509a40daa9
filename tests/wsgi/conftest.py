"""Fixtures for the WSGI tests: a capturing tripwire client with release health."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents, CaptureReporter


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
