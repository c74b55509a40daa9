"""Fixtures for the delivery tests: a real HTTP sink on 127.0.0.1 and helpers to raise real errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.sink import Sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_and_capture(n: int, **kwargs: object) -> list[str | None]:
    """Raise ``n`` real exceptions and report each with ``tripwire.capture_exception``."""
    import tripwire

    ids = []
    for i in range(n):
        try:
            raise ValueError(f"failure number {i}")
        except ValueError:
            ids.append(tripwire.capture_exception(**kwargs))  # type: ignore[arg-type]
    return ids
