"""Shared fixtures. Each test starts with no active client and an empty process scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tripwire._globals


@pytest.fixture(autouse=True)
def _reset_tripwire() -> Iterator[None]:
    tripwire._globals.reset()
    yield
    tripwire._globals.reset()
