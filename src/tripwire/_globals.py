"""Global state department: the one active client. ``reset()`` puts everything back, for tests."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from . import _scope

if TYPE_CHECKING:
    from ._client import Client

client: Client | None = None


def reset() -> None:
    """Close the active client (without waiting) and forget every process-level scope value."""
    global client
    uninstall_integrations()
    old, client = client, None
    if old is not None:
        old.close(timeout=0)
    _scope.reset_root()


def uninstall_integrations() -> None:
    """Restore every hook the integrations installed (a no-op if they were never loaded)."""
    integrations = sys.modules.get("tripwire.integrations")
    if integrations is not None:
        integrations.uninstall()
