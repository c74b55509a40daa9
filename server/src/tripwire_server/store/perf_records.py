"""Records of performance data (rollups, samples, traces); the repository is :mod:`.performance`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..performance.histogram import Histogram

#: Apdex threshold of a project without its own (Sentry's default too).
DEFAULT_APDEX_MS = 300.0


@dataclasses.dataclass
class RollupRow:
    """One stored rollup: a (minute or hour) bucket of one transaction name and op."""

    bucket: float
    environment: str
    release: str
    name: str
    op: str
    count: int
    failures: int
    duration_sum: float
    histogram: Histogram


@dataclasses.dataclass
class SpanOpRow:
    span_op: str
    count: int
    total_ms: float


@dataclasses.dataclass
class Sample:
    """A stored sampled transaction (its spans are in :meth:`~.performance.Performance.get_trace`)."""

    project_id: int
    event_id: str
    trace_id: str
    span_id: str
    name: str
    op: str
    environment: str
    release: str
    start_timestamp: float
    timestamp: float
    duration_ms: float
    failed: bool
    kind: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TraceEvent:
    """An error (or performance issue) event that carries a trace id."""

    project_id: int
    event_id: str
    trace_id: str
    span_id: str | None
    issue_id: int
    timestamp: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
