"""Records of structured logs: what the digest writes and what pages and the API read."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class LogRow:
    """One log record to store."""

    project_id: int
    timestamp: float
    received_at: float
    level: str
    body: str
    trace_id: str | None
    #: Attributes as compact JSON with sorted keys (see :func:`..logs.attributes_json`).
    attributes: str


@dataclasses.dataclass(frozen=True)
class LogQuery:
    """Which logs to list: all conditions must hold."""

    level: str | None = None
    #: Words that must all appear in the body (case-insensitive).
    text: str = ""
    #: ``(key, value)`` attributes that must match exactly.
    attributes: tuple[tuple[str, str], ...] = ()
    trace_id: str | None = None
    limit: int = 100
    offset: int = 0


@dataclasses.dataclass(frozen=True)
class LogRecord:
    """A stored log record."""

    id: int
    project_id: int
    timestamp: float
    level: str
    body: str
    trace_id: str | None
    attributes: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: Any) -> LogRecord:
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))
