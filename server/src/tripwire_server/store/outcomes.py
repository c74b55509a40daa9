"""Counted outcomes (accepted, refused, dropped; per project, hour, source, category and reason)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .database import Cursor


def upsert_outcomes(c: Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
    """Add ``(project_id, hour, source, category, reason, quantity)`` rows to the counters."""
    c.many(
        "INSERT INTO outcomes (project_id, hour, source, category, reason, quantity)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, hour, source, category, reason)"
        " DO UPDATE SET quantity = outcomes.quantity + excluded.quantity",
        rows,
    )
