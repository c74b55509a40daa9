"""Records and the store interface of performance data (rollups, samples, traces)."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from ..performance.histogram import Histogram
from ..performance.model import Transaction

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
    """A stored sampled transaction (its spans are in :meth:`PerformanceStore.get_sample`)."""

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


class PerformanceStore(abc.ABC):
    """Transactions rolled up, sampled and assembled into traces (docs/performance.md)."""

    @abc.abstractmethod
    def perf_rollups(
        self,
        project_id: int,
        since: float,
        until: float,
        *,
        environment: str | None = None,
        release: str | None = None,
        name: str | None = None,
        res: int | None = None,
    ) -> tuple[int, list[RollupRow]]:
        """``(resolution in seconds, rows)`` covering ``[since, until)`` with ``since`` rounded down
        to the resolution: day rows for ranges over two days, hour rows over six hours, else
        minute rows (or the resolution ``res`` asked for: 60, 3600 or 86400)."""

    @abc.abstractmethod
    def perf_table(
        self,
        project_id: int,
        since: float,
        until: float,
        *,
        environment: str | None = None,
        release: str | None = None,
        name: str | None = None,
    ) -> tuple[list[RollupRow], dict[tuple[str, str], Histogram]]:
        """The Performance table's data: rows per bucket, name and op (environments and releases
        summed, histograms empty) and the merged histogram of each (name, op)."""

    @abc.abstractmethod
    def perf_span_ops(
        self,
        project_id: int,
        name: str,
        since: float,
        until: float,
        *,
        environment: str | None = None,
        release: str | None = None,
    ) -> list[SpanOpRow]:
        """Time spent per span op category (db, http, cache, ...) in one transaction name."""

    @abc.abstractmethod
    def perf_filters(self, project_id: int, since: float) -> tuple[list[str], list[str]]:
        """``(environments, releases)`` seen in the rollups since ``since``."""

    @abc.abstractmethod
    def list_samples(
        self, project_id: int, name: str, *, since: float = 0.0, limit: int = 20
    ) -> list[Sample]:
        """Stored samples of a transaction name, slowest first."""

    @abc.abstractmethod
    def get_sample(self, project_id: int, event_id: str) -> Transaction:
        """A sampled transaction with its spans. NotFound if missing."""

    @abc.abstractmethod
    def get_trace(self, trace_id: str) -> tuple[list[Transaction], list[TraceEvent]]:
        """Every stored transaction of a trace (any project) and the events that carry its id."""

    @abc.abstractmethod
    def trace_ids(self, project_id: int, event_ids: list[str]) -> dict[str, str]:
        """event id -> trace id, for those events of ``event_ids`` that carry one."""

    @abc.abstractmethod
    def transaction_issues(self, project_id: int, name: str, limit: int = 20) -> list[Any]:
        """Issues whose events happened in the transaction ``name`` (by the transaction tag)."""

    @abc.abstractmethod
    def apdex_threshold(self, project_id: int) -> float:
        """The project's Apdex threshold T in milliseconds (default 300)."""

    @abc.abstractmethod
    def set_apdex_threshold(self, project_id: int, threshold_ms: float) -> None: ...

    @abc.abstractmethod
    def apply_perf_retention(self, *, rollup_days: int, sample_days: int, now: float) -> int:
        """Drop rollups and samples older than their retention (0 keeps them); return units removed
        (partitions on PostgreSQL, rows on SQLite)."""

    @abc.abstractmethod
    def perf_storage(self) -> dict[str, int]:
        """Rows of the performance tables (for the bench and the status endpoint)."""
