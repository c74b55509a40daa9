"""Performance data: rollups, span-op times, samples and trace links.

Written by the digest in its transaction (:meth:`Performance.write`), read by
the API and the pages. On PostgreSQL ``perf_rollups``, ``perf_span_ops`` and ``perf_samples`` are
partitioned by day (partitions are created as data arrives, under an advisory lock) and retention
drops whole partitions, so deleting old data leaves no bloat to vacuum. SQLite deletes rows.
"""

from __future__ import annotations

import datetime as _dt
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import _json
from ..performance import histogram
from ..performance.model import Transaction
from ..performance.rollup import DAY, HOUR, MINUTE, Rollup, RollupKey, SpanOpTime, fold
from ._pg_locks import SCOPED_KEY
from .database import Cursor, Database
from .issue_rows import ISSUE_COLUMNS as _ISSUE_COLUMNS
from .issue_rows import issue_from_row as _issue
from .perf_records import DEFAULT_APDEX_MS, RollupRow, Sample, SpanOpRow, TraceEvent

if TYPE_CHECKING:
    from .base import Issue
    from .digest_records import EnvelopeResult
    from .digest_writer import DigestWriter

#: Samples kept per project × transaction name × hour: the slowest, and a uniform random set ...
SLOWEST_PER_HOUR = 5
RANDOM_PER_HOUR = 5
#: ... and first of all the first failed ones and the first with a performance issue, so that
#: errors and N+1 issues link to a stored trace.
FAILED_PER_HOUR = 5
ISSUE_PER_HOUR = 5
#: Ranges longer than this are answered from hour rollups ...
HOUR_ROLLUPS_AFTER = 6 * 3600
#: ... and longer than this from day rollups (counted in whole UTC days).
DAY_ROLLUPS_AFTER = 2 * 86400


def resolution(since: float, until: float) -> int:
    """The rollup resolution that answers ``[since, until)``."""
    span = until - since
    return DAY if span > DAY_ROLLUPS_AFTER else HOUR if span > HOUR_ROLLUPS_AFTER else MINUTE


#: Tables partitioned by day on PostgreSQL, with their partition key.
PARTITIONED = (("perf_rollups", "bucket"), ("perf_span_ops", "bucket"), ("perf_samples", "hour"))
# Any fixed number: the advisory lock under which PostgreSQL partitions are created.
_PARTITION_LOCK = 0x7472_7066
_DAY = 86400
_SAMPLE_COLUMNS = (
    "project_id, event_id, trace_id, span_id, name, op, environment, release, start_timestamp,"
    " timestamp, duration_ms, failed, kind"
)


def _day_suffix(day: float) -> str:
    return _dt.datetime.fromtimestamp(day, _dt.timezone.utc).strftime("%Y%m%d")


def _sample(row: Sequence[Any]) -> Sample:
    return Sample(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        float(row[8]),
        float(row[9]),
        float(row[10]),
        bool(row[11]),
        row[12],
    )


class Performance:
    """Performance data: written by the digest, read by the API and the pages."""

    def __init__(self, db: Database) -> None:
        self.db = db
        #: Random source of the sample reservoir (replaced in tests).
        self.random = random.Random()

    # -- writing (inside the digest transaction) ---------------------------------------------

    def write(self, c: Cursor, results: list[EnvelopeResult], writer: DigestWriter) -> None:
        """Merge the batch's transactions into the rollups and samples, and link its events to traces."""
        txs = [t for r in results for t in r.transactions]
        if txs:
            if self.db.backend == "postgresql":
                self.ensure_partitions(c, {t.timestamp for t in txs})
            rollups, ops = fold(txs)
            self._merge_rollups(c, rollups)
            self._add_span_ops(c, ops)
            self._keep_samples(c, txs)
        links = [
            (e.project_id, e.event_id, e.trace_id, e.span_id, issue_id, e.timestamp)
            for e, issue_id in writer.stored
            if e.trace_id
        ]
        c.many(
            "INSERT INTO trace_events (project_id, event_id, trace_id, span_id, issue_id, timestamp)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, event_id) DO NOTHING",
            sorted(links),
        )

    def ensure_partitions(self, c: Cursor, timestamps: set[float]) -> None:
        """Make the day partitions (PostgreSQL) that ``timestamps`` fall in, if missing."""
        days = sorted({math.floor(ts / _DAY) * _DAY for ts in timestamps})
        missing = []
        for day in days:
            for table, _key in PARTITIONED:
                name = f"{table}_p{_day_suffix(day)}"
                if c.one("SELECT to_regclass(?)", (name,))[0] is None:
                    missing.append((table, name, day))
        if not missing:
            return
        c.ex(f"SELECT pg_advisory_xact_lock({SCOPED_KEY})", (_PARTITION_LOCK,))
        for table, name, day in missing:
            c.ex(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table}"
                f" FOR VALUES FROM ({float(day)}) TO ({float(day + _DAY)})"
            )

    def _merge_rollups(self, c: Cursor, rollups: dict[RollupKey, Rollup]) -> None:
        """Add the batch's rollups to the stored ones (histograms merge bucket by bucket)."""
        keys = sorted(rollups)
        # Rows exist first, so that the SELECT below can lock every one (PostgreSQL processes
        # merging the same minute then wait for each other instead of losing counts).
        c.many(
            "INSERT INTO perf_rollups (project_id, res, bucket, environment, release, name, op,"
            " count, failures, duration_sum, histogram) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, '{}')"
            " ON CONFLICT DO NOTHING",
            keys,
        )
        groups: dict[tuple[int, int, float], list[RollupKey]] = {}
        for key in keys:
            groups.setdefault(key[:3], []).append(key)
        updates = []
        for (project_id, res, bucket), members in sorted(groups.items()):
            wanted = {k[3:] for k in members}
            stored = {
                (r[0], r[1], r[2], r[3]): r[4:]
                for r in c.all(
                    "SELECT environment, release, name, op, count, failures, duration_sum, histogram"
                    " FROM perf_rollups WHERE project_id = ? AND res = ? AND bucket = ?"
                    " ORDER BY name, op, environment, release" + self.db.for_update,
                    (project_id, res, bucket),
                )
                if (r[0], r[1], r[2], r[3]) in wanted
            }
            for key in members:
                mine = rollups[key]
                count, failures, duration_sum, text = stored.get(key[3:], (0, 0, 0.0, "{}"))
                merged = histogram.merge(histogram.decode(text), mine.histogram)
                updates.append(
                    (
                        int(count) + mine.count,
                        int(failures) + mine.failures,
                        float(duration_sum) + mine.duration_sum,
                        histogram.encode(merged),
                        *key,
                    )
                )
        c.many(
            "UPDATE perf_rollups SET count = ?, failures = ?, duration_sum = ?, histogram = ?"
            " WHERE project_id = ? AND res = ? AND bucket = ? AND environment = ? AND release = ?"
            " AND name = ? AND op = ?",
            updates,
        )

    def _add_span_ops(self, c: Cursor, ops: dict[RollupKey, SpanOpTime]) -> None:
        c.many(
            "INSERT INTO perf_span_ops (project_id, res, bucket, environment, release, name, span_op,"
            " count, total_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, res, bucket, name, span_op, environment, release) DO UPDATE SET"
            " count = perf_span_ops.count + excluded.count,"
            " total_ms = perf_span_ops.total_ms + excluded.total_ms",
            [(*k, v.count, v.total_ms) for k, v in sorted(ops.items())],
        )

    def _keep_samples(self, c: Cursor, txs: list[Transaction]) -> None:
        """Keep the first failed ones, the first with an issue, the slowest and a uniform random
        set (reservoir) per name and hour: at most 20."""
        groups: dict[tuple[int, str, float], list[Transaction]] = {}
        for tx in txs:
            hour = float(math.floor(tx.timestamp / HOUR) * HOUR)
            groups.setdefault((tx.project_id, tx.name, hour), []).append(tx)
        rng = self.random
        for key in sorted(groups):
            project_id, name, hour = key
            c.ex(
                "INSERT INTO perf_sample_seen (project_id, name, hour, seen) VALUES (?, ?, ?, 0)"
                " ON CONFLICT (project_id, name, hour) DO NOTHING",
                key,
            )
            seen = int(
                c.one(
                    "SELECT seen FROM perf_sample_seen WHERE project_id = ? AND name = ? AND hour = ?"
                    + self.db.for_update,
                    key,
                )[0]
            )
            # Entries: [duration, stored id or None, transaction or None].
            slow: list[list[Any]] = []
            rand: list[list[Any]] = []
            kept = {"failed": 0, "issue": 0}
            for row_id, kind, duration in c.all(
                "SELECT id, kind, duration_ms FROM perf_samples"
                " WHERE project_id = ? AND name = ? AND hour = ?",
                key,
            ):
                if kind in kept:
                    kept[kind] += 1
                else:
                    (slow if kind == "slow" else rand).append([float(duration), row_id, None])
            evicted: list[int] = []
            firsts: list[tuple[str, Transaction]] = []
            for tx in groups[key]:
                seen += 1
                first = "failed" if tx.failed else "issue" if tx.has_issue else None
                if first is not None and kept[first] < (FAILED_PER_HOUR if tx.failed else ISSUE_PER_HOUR):
                    kept[first] += 1
                    firsts.append((first, tx))
                    continue
                entry: list[Any] = [tx.duration_ms, None, tx]
                if len(slow) < SLOWEST_PER_HOUR:
                    slow.append(entry)
                    continue
                fastest = min(slow, key=lambda e: e[0])
                if entry[0] > fastest[0]:
                    slow.remove(fastest)
                    slow.append(entry)
                    # A displaced new one competes for a random place; a stored one is dropped.
                    entry = fastest
                    if entry[2] is None:
                        evicted.append(entry[1])
                        continue
                if len(rand) < RANDOM_PER_HOUR:
                    rand.append(entry)
                    continue
                j = rng.randrange(seen)
                if j < RANDOM_PER_HOUR:
                    if rand[j][1] is not None:
                        evicted.append(rand[j][1])
                    rand[j] = entry
            if evicted:
                marks = ",".join("?" * len(evicted))
                c.ex(f"DELETE FROM perf_samples WHERE hour = ? AND id IN ({marks})", [hour, *evicted])
            rows = [
                (
                    tx.project_id,
                    hour,
                    kind,
                    tx.trace_id,
                    tx.span_id,
                    tx.event_id,
                    tx.name,
                    tx.op,
                    tx.environment,
                    tx.release,
                    tx.start_timestamp,
                    tx.timestamp,
                    tx.duration_ms,
                    int(tx.failed),
                    _json.pack_event(tx.to_json()),
                )
                for kind, tx in [
                    *firsts,
                    *(("slow", e[2]) for e in slow),
                    *(("random", e[2]) for e in rand),
                ]
                if tx is not None
            ]
            c.many(
                "INSERT INTO perf_samples (project_id, hour, kind, trace_id, span_id, event_id, name,"
                " op, environment, release, start_timestamp, timestamp, duration_ms, failed, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            c.ex(
                "UPDATE perf_sample_seen SET seen = ? WHERE project_id = ? AND name = ? AND hour = ?",
                (seen, *key),
            )

    # -- reading -----------------------------------------------------------------------------

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
        res = res or resolution(since, until)
        where, params = self._perf_where(project_id, res, since, until, environment, release, name)
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT bucket, environment, release, name, op, count, failures, duration_sum, histogram"
                f" FROM perf_rollups WHERE {where}",
                params,
            )
        return res, [
            RollupRow(
                float(r[0]), r[1], r[2], r[3], r[4], int(r[5]), int(r[6]), float(r[7]), histogram.decode(r[8])
            )
            for r in rows
        ]

    def perf_table(
        self,
        project_id: int,
        since: float,
        until: float,
        *,
        environment: str | None = None,
        release: str | None = None,
        name: str | None = None,
    ) -> tuple[list[RollupRow], dict[tuple[str, str], histogram.Histogram]]:
        """The Performance table's data: rows per bucket, name and op (environments and releases
        summed, histograms empty) and the merged histogram of each (name, op)."""
        res = resolution(since, until)
        where, params = self._perf_where(project_id, res, since, until, environment, release, name)
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT bucket, name, op, count, failures, duration_sum, histogram FROM perf_rollups"
                f" WHERE {where}",
                params,
            )
        # Histograms are parsed by orjson and added as dense arrays (both in C): decoding and
        # merging thousands of dicts in Python took most of the page's time over a week.
        totals: dict[tuple[float, str, str], list[Any]] = {}
        dense: dict[tuple[str, str], list[int]] = {}
        for bucket, row_name, op, count, failures, duration_sum, text in rows:
            t = totals.get((bucket, row_name, op))
            if t is None:
                t = totals[(bucket, row_name, op)] = [0, 0, 0.0]
            t[0] += count
            t[1] += failures
            t[2] += duration_sum
            acc = dense.get((row_name, op))
            if acc is None:
                acc = dense[(row_name, op)] = histogram.dense()
            data = _json.loads(text)
            if isinstance(data, dict):
                data = histogram.decode(text)
                histogram.merge_encoded(acc, [0, *(data.get(i, 0) for i in range(max(data, default=0) + 1))])
            else:
                histogram.merge_encoded(acc, data)
        out = [
            RollupRow(float(k[0]), "", "", k[1], k[2], int(v[0]), int(v[1]), float(v[2]), {})
            for k, v in totals.items()
        ]
        return out, {k: histogram.from_dense(v) for k, v in dense.items()}

    @staticmethod
    def _perf_where(
        project_id: int,
        res: int,
        since: float,
        until: float,
        environment: str | None,
        release: str | None,
        name: str | None,
    ) -> tuple[str, list[Any]]:
        where = "project_id = ? AND res = ? AND bucket >= ? AND bucket < ?"
        params: list[Any] = [project_id, res, float(math.floor(since / res) * res), float(until)]
        for column, value in (("environment", environment), ("release", release), ("name", name)):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        return where, params

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
        res = resolution(since, until)
        where, params = self._perf_where(project_id, res, since, until, environment, release, name)
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT span_op, SUM(count), SUM(total_ms) FROM perf_span_ops WHERE {where}"
                " GROUP BY span_op ORDER BY SUM(total_ms) DESC",
                params,
            )
        return [SpanOpRow(r[0], int(r[1]), float(r[2])) for r in rows]

    def perf_filters(self, project_id: int, since: float) -> tuple[list[str], list[str]]:
        """``(environments, releases)`` seen in the rollups since ``since``."""
        with self.db.tx(write=False) as c:
            envs = c.all(
                "SELECT DISTINCT environment FROM perf_rollups WHERE project_id = ? AND res = ?"
                " AND bucket >= ? ORDER BY environment LIMIT 100",
                (project_id, HOUR, since),
            )
            releases = c.all(
                "SELECT DISTINCT release FROM perf_rollups WHERE project_id = ? AND res = ?"
                " AND bucket >= ? ORDER BY release LIMIT 200",
                (project_id, HOUR, since),
            )
        return [r[0] for r in envs], [r[0] for r in releases]

    def list_samples(
        self, project_id: int, name: str, *, since: float = 0.0, limit: int = 20
    ) -> list[Sample]:
        """Stored samples of a transaction name, slowest first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_SAMPLE_COLUMNS} FROM perf_samples WHERE project_id = ? AND name = ?"
                " AND hour >= ? ORDER BY duration_ms DESC, id LIMIT ?",
                (project_id, name, float(math.floor(since / HOUR) * HOUR), limit),
            )
        return [_sample(r) for r in rows]

    def get_trace(self, trace_id: str) -> tuple[list[Transaction], list[TraceEvent]]:
        """Every stored transaction of a trace (any project) and the events that carry its id."""
        with self.db.tx(write=False) as c:
            blobs = c.all(
                "SELECT data FROM perf_samples WHERE trace_id = ? ORDER BY start_timestamp LIMIT 500",
                (trace_id,),
            )
            events = c.all(
                "SELECT project_id, event_id, trace_id, span_id, issue_id, timestamp FROM trace_events"
                " WHERE trace_id = ? ORDER BY timestamp LIMIT 500",
                (trace_id,),
            )
        txs: dict[tuple[int, str], Transaction] = {}
        for (blob,) in blobs:
            tx = Transaction.from_json(_json.unpack_event(bytes(blob)))
            txs.setdefault((tx.project_id, tx.span_id), tx)  # kept as slowest and random: once
        return list(txs.values()), [TraceEvent(*r) for r in events]

    def trace_ids(self, project_id: int, event_ids: list[str]) -> dict[str, str]:
        """event id -> trace id, for those events of ``event_ids`` that carry one."""
        out: dict[str, str] = {}
        with self.db.tx(write=False) as c:
            for start in range(0, len(event_ids), 500):
                chunk = event_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                out.update(
                    (r[0], r[1])
                    for r in c.all(
                        "SELECT event_id, trace_id FROM trace_events"
                        f" WHERE project_id = ? AND event_id IN ({marks})",
                        [project_id, *chunk],
                    )
                )
        return out

    def transaction_issues(self, project_id: int, name: str, limit: int = 20) -> list[Issue]:
        """Issues whose events happened in the transaction ``name`` (by the transaction tag)."""
        columns = ", ".join(f"i.{col.strip()}" for col in _ISSUE_COLUMNS.split(","))
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {columns} FROM issue_tags t JOIN issues i ON i.id = t.issue_id"
                " WHERE i.project_id = ? AND t.key = 'transaction' AND t.value = ?"
                " ORDER BY i.last_seen DESC LIMIT ?",
                (project_id, name, limit),
            )
        return [_issue(r) for r in rows]

    def apdex_threshold(self, project_id: int) -> float:
        """The project's Apdex threshold T in milliseconds (default 300)."""
        with self.db.tx(write=False) as c:
            row = c.one("SELECT apdex_threshold_ms FROM perf_settings WHERE project_id = ?", (project_id,))
        return DEFAULT_APDEX_MS if row is None else float(row[0])

    def set_apdex_threshold(self, project_id: int, threshold_ms: float) -> None:
        if not (math.isfinite(threshold_ms) and threshold_ms > 0):
            raise ValueError("the Apdex threshold must be a positive number of milliseconds")
        with self.db.tx() as c:
            c.ex(
                "INSERT INTO perf_settings (project_id, apdex_threshold_ms) VALUES (?, ?)"
                " ON CONFLICT (project_id) DO UPDATE SET apdex_threshold_ms = excluded.apdex_threshold_ms",
                (project_id, threshold_ms),
            )

    # -- size ------------------------------------------------------------------

    def perf_storage(self) -> dict[str, int]:
        """Rows of the performance tables (for the bench and the status endpoint)."""
        out: dict[str, int] = {}
        with self.db.tx(write=False) as c:
            for table in ("perf_rollups", "perf_span_ops", "perf_samples", "trace_events"):
                out[table] = int(c.one(f"SELECT COUNT(*) FROM {table}")[0])
        return out
