"""Global state department: the one active client. ``reset()`` puts everything back, for tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _scope

if TYPE_CHECKING:
    from ._client import Client

client: Client | None = None


def reset() -> None:
    """Close the active client (without waiting) and forget every process-level scope value."""
    global client
    old, client = client, None
    if old is not None:
        old.close(timeout=0)
    _scope.reset_root()
