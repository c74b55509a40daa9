"""Profiles: stored profiles, per-function aggregates, continuous-profile windows.

Written by the digest in its transaction (:meth:`Profiles.write`), after the
performance data of the same batch, so that a continuous-profile chunk finds the windows of the
transactions that arrived with or before it, and a profile whose transaction was kept as a sample
is kept too. Every profile adds to the aggregates; the profiles themselves are kept compressed,
at most :data:`PROFILES_PER_HOUR` per transaction name and hour (plus those of sampled
transactions), and everything goes after ``profile_retention_days``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import _json
from ..profiling.aggregate import FunctionCounts, counted_threads, function_counts
from ..profiling.model import CONTINUOUS, Profile, TransactionWindow, attribute
from .base import NotFound, hour_start
from .database import Cursor, Database
from .profile_records import FunctionRow, ProfileInfo, ProfileTotals

if TYPE_CHECKING:
    from .digest_records import EnvelopeResult


#: Profiles kept per project × transaction name × hour, besides those of stored sample transactions.
PROFILES_PER_HOUR = 20
#: Parts of continuous chunks that no transaction claimed yet, kept per project and hour: a
#: transaction that arrives after its chunk takes its samples from them (:meth:`_reattribute`).
CONTINUOUS_PER_HOUR = 120
_HOUR = 3600.0
_INFO_COLUMNS = (
    "project_id, profile_id, kind, event_id, trace_id, name, release, environment, start_timestamp,"
    " end_timestamp, samples"
)


def _info(row: Sequence[Any]) -> ProfileInfo:
    return ProfileInfo(
        int(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        float(row[8]),
        float(row[9]),
        int(row[10]),
    )


class Profiles:
    """Profiles and their aggregates: written by the digest, read by the API and the pages."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing (inside the digest transaction) ---------------------------------------------

    def write(self, c: Cursor, results: Sequence[EnvelopeResult]) -> None:
        """Store the batch's profiles and windows in the digest's transaction."""
        windows = [w for r in results for w in r.profile_windows]
        c.many(
            "INSERT INTO profile_windows (project_id, profiler_id, event_id, thread_id, start_timestamp,"
            " end_timestamp, trace_id, name, release, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, profiler_id, event_id) DO NOTHING",
            sorted(
                (w.project_id, w.profiler_id, w.event_id, w.thread_id, w.start, w.end, w.trace_id, w.name,
                 w.release, w.environment)
                for w in windows
            ),
        )  # fmt: skip
        parts: list[tuple[int, Profile]] = self._reattribute(c, windows)
        for result in results:
            for project_id, profile in result.profiles:
                if profile.kind == "chunk":
                    parts.extend(
                        (project_id, p) for p in attribute(profile, self._windows(c, project_id, profile))
                    )
                else:
                    parts.append((project_id, profile))
        self._add_profiles(c, parts)

    def _reattribute(self, c: Cursor, windows: list[TransactionWindow]) -> list[tuple[int, Profile]]:
        """The parts of already stored ``(continuous)`` samples that belong to ``windows`` (the
        transactions of this batch): an SDK may send a chunk before the transactions it covers.
        They are taken out of the stored part and its aggregates, and returned to be added anew."""
        groups: dict[tuple[int, str], list[TransactionWindow]] = {}
        for w in windows:
            groups.setdefault((w.project_id, w.profiler_id), []).append(w)
        moved_all: list[tuple[int, Profile]] = []
        for (project_id, profiler_id), group in sorted(groups.items()):
            rows = c.all(
                "SELECT id, hour, data FROM profiles WHERE project_id = ? AND profiler_id = ? AND name = ?"
                " AND end_timestamp >= ? AND start_timestamp <= ? ORDER BY id" + self.db.for_update,
                (project_id, profiler_id, CONTINUOUS, min(w.start for w in group), max(w.end for w in group)),
            )
            for row_id, hour, blob in rows:
                stored = Profile.from_json(_json.unpack_event(bytes(blob)))
                parts = attribute(stored, group)
                moved = [p for p in parts if p.transaction_event_id]
                if not moved:
                    continue
                self._subtract(c, (project_id, CONTINUOUS, stored.release, float(hour)), moved)
                rest = [p for p in parts if not p.transaction_event_id and p.samples]
                if rest:
                    c.ex(
                        "UPDATE profiles SET data = ?, samples = ?, start_timestamp = ?, end_timestamp = ?"
                        " WHERE id = ?",
                        (
                            _json.pack_event(rest[0].to_json()),
                            len(rest[0].samples),
                            rest[0].start,
                            rest[0].end,
                            row_id,
                        ),
                    )
                else:
                    c.ex("DELETE FROM profiles WHERE id = ?", (row_id,))
                moved_all.extend((project_id, p) for p in moved)
        return moved_all

    @staticmethod
    def _subtract(c: Cursor, key: tuple[int, str, str, float], parts: list[Profile]) -> None:
        """Take ``parts`` (counted over every thread, as a continuous part is) out of ``key``'s
        aggregates."""
        total = FunctionCounts()
        for part in parts:
            total.add(function_counts(part, None))
        c.ex(
            "UPDATE profile_totals SET samples = samples - ?, idle = idle - ?"
            " WHERE project_id = ? AND name = ? AND release = ? AND hour = ?",
            (total.samples, total.idle, *key),
        )
        c.many(
            "UPDATE profile_functions SET self_samples = self_samples - ?, total_samples = total_samples - ?"
            " WHERE project_id = ? AND name = ? AND release = ? AND hour = ? AND function = ? AND module = ?"
            " AND file = ?",
            [(own, all_, *key, *fn) for fn, (own, all_) in sorted(total.functions.items())],
        )
        c.ex(
            "DELETE FROM profile_functions WHERE project_id = ? AND name = ? AND release = ? AND hour = ?"
            " AND total_samples <= 0",
            key,
        )

    def _windows(self, c: Cursor, project_id: int, chunk: Profile) -> list[TransactionWindow]:
        rows = c.all(
            "SELECT profiler_id, thread_id, start_timestamp, end_timestamp, event_id, trace_id, name,"
            " release, environment FROM profile_windows WHERE project_id = ? AND profiler_id = ?"
            " AND end_timestamp >= ? AND start_timestamp <= ? ORDER BY start_timestamp LIMIT 10000",
            (project_id, chunk.profiler_id, chunk.start, chunk.end),
        )
        return [
            TransactionWindow(project_id, r[0], r[1], float(r[2]), float(r[3]), r[4], r[5], r[6], r[7], r[8])
            for r in rows
        ]

    def _add_profiles(self, c: Cursor, parts: Sequence[tuple[int, Profile]], *, keep: bool = False) -> None:
        """Add the profiles' counts to the aggregates (summed in memory first: one row write per
        function and hour for the whole batch) and keep those that fit in their hour."""
        totals: dict[tuple[int, str, str, float], list[int]] = {}
        functions: dict[tuple[Any, ...], list[int]] = {}
        kept: dict[tuple[int, str, float], int] = {}
        rows = []
        # A profile sent again (an SDK retrying after a timeout) is not counted twice, as far as
        # the stored profiles tell.
        seen = c.stored_keys("profiles", "profile_id", ((p, profile.profile_id) for p, profile in parts))
        for project_id, profile in parts:
            if (project_id, profile.profile_id) in seen:
                continue
            seen.add((project_id, profile.profile_id))
            counts = function_counts(profile, counted_threads(profile))
            hour = hour_start(profile.start)
            key = (project_id, profile.transaction_name, profile.release, hour)
            if counts.samples:
                total = totals.setdefault(key, [0, 0, 0])
                total[0] += counts.samples
                total[1] += counts.idle
                total[2] += 1
                for fn, (own, all_) in counts.functions.items():
                    acc = functions.setdefault((*key, *fn), [0, 0])
                    acc[0] += own
                    acc[1] += all_
            if not profile.samples:
                continue
            group = (project_id, profile.transaction_name, hour)
            if group not in kept:
                kept[group] = int(
                    c.one(
                        "SELECT COUNT(*) FROM profiles WHERE project_id = ? AND name = ? AND hour = ?", group
                    )[0]
                )
            cap = CONTINUOUS_PER_HOUR if profile.transaction_name == CONTINUOUS else PROFILES_PER_HOUR
            if kept[group] >= cap and not keep and not self._is_sampled(c, project_id, profile):
                continue
            kept[group] += 1
            rows.append(
                (
                    project_id,
                    profile.profile_id,
                    profile.kind,
                    profile.transaction_event_id,
                    profile.trace_id,
                    profile.profiler_id,
                    profile.transaction_name,
                    profile.release,
                    profile.environment,
                    hour,
                    profile.start,
                    profile.end,
                    len(profile.samples),
                    _json.pack_event(profile.to_json()),
                )
            )
        c.many(
            "INSERT INTO profile_totals (project_id, name, release, hour, samples, idle, profiles)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, name, release, hour) DO UPDATE SET"
            " samples = profile_totals.samples + excluded.samples,"
            " idle = profile_totals.idle + excluded.idle,"
            " profiles = profile_totals.profiles + excluded.profiles",
            [(*k, *v) for k, v in sorted(totals.items())],
        )
        # Sorted: PostgreSQL processes upserting the same rows then lock them in one order.
        c.many(
            "INSERT INTO profile_functions (project_id, name, release, hour, function, module, file,"
            " self_samples, total_samples) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, name, release, hour, function, module, file) DO UPDATE SET"
            " self_samples = profile_functions.self_samples + excluded.self_samples,"
            " total_samples = profile_functions.total_samples + excluded.total_samples",
            [(*k, *v) for k, v in sorted(functions.items())],
        )
        c.many(
            "INSERT INTO profiles (project_id, profile_id, kind, event_id, trace_id, profiler_id, name,"
            " release, environment, hour, start_timestamp, end_timestamp, samples, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, profile_id) DO NOTHING",
            rows,
        )

    @staticmethod
    def _is_sampled(c: Cursor, project_id: int, profile: Profile) -> bool:
        """Whether the profile's transaction is a stored sample (its summary page links here)."""
        if not profile.transaction_event_id:
            return False
        row = c.one(
            "SELECT 1 FROM perf_samples WHERE project_id = ? AND name = ? AND hour >= ? AND hour <= ?"
            " AND event_id = ?",
            (
                project_id,
                profile.transaction_name,
                hour_start(profile.start),
                hour_start(profile.end) + _HOUR,
                profile.transaction_event_id,
            ),
        )
        return row is not None

    def add_profile(self, project_id: int, profile: Profile) -> None:
        """Aggregate and keep one profile outside the digest (``tripwire profile import``)."""
        with self.db.tx() as c:
            self._add_profiles(c, [(project_id, profile)], keep=True)

    # -- reading -----------------------------------------------------------------------------

    def profile_functions(
        self, project_id: int, name: str, since: float, until: float, *, release: str | None = None
    ) -> tuple[ProfileTotals, list[FunctionRow]]:
        """Every function's self and total samples in transaction ``name`` (hour aggregates)."""
        where = "project_id = ? AND name = ? AND hour >= ? AND hour < ?"
        params: list[Any] = [project_id, name, hour_start(since), until]
        if release is not None:
            where += " AND release = ?"
            params.append(release)
        with self.db.tx(write=False) as c:
            total = c.one(
                f"SELECT SUM(samples), SUM(idle), SUM(profiles) FROM profile_totals WHERE {where}", params
            )
            rows = c.all(
                "SELECT function, module, file, SUM(self_samples), SUM(total_samples) FROM profile_functions"
                f" WHERE {where} GROUP BY function, module, file",
                params,
            )
        totals = ProfileTotals(int(total[0] or 0), int(total[1] or 0), int(total[2] or 0))
        return totals, [FunctionRow(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def profile_releases(self, project_id: int, name: str, since: float) -> list[str]:
        """Releases with profile samples of ``name`` since ``since``, newest first (by first hour)."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT release, MIN(hour), MAX(hour) FROM profile_totals"
                " WHERE project_id = ? AND name = ? AND hour >= ? GROUP BY release",
                (project_id, name, hour_start(since)),
            )
        return [r[0] for r in sorted(rows, key=lambda r: (float(r[1]), float(r[2]), r[0]), reverse=True)]

    def profile_transactions(self, project_id: int, since: float) -> list[tuple[str, int]]:
        """``(transaction name, samples)`` of the project's profiled transactions, most first."""
        with self.db.tx(write=False) as c:
            rows = c.all(
                "SELECT name, SUM(samples) FROM profile_totals WHERE project_id = ? AND hour >= ?"
                " GROUP BY name ORDER BY SUM(samples) DESC, name LIMIT 500",
                (project_id, hour_start(since)),
            )
        return [(r[0], int(r[1])) for r in rows]

    def list_profiles(
        self,
        project_id: int,
        name: str | None = None,
        *,
        since: float = 0.0,
        release: str | None = None,
        limit: int = 50,
    ) -> list[ProfileInfo]:
        """Stored profiles, newest first."""
        where = "project_id = ? AND hour >= ?"
        params: list[Any] = [project_id, hour_start(since)]
        if name is not None:
            where += " AND name = ?"
            params.append(name)
        if release is not None:
            where += " AND release = ?"
            params.append(release)
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT {_INFO_COLUMNS} FROM profiles WHERE {where} ORDER BY start_timestamp DESC, id DESC"
                " LIMIT ?",
                [*params, limit],
            )
        return [_info(r) for r in rows]

    def get_profile(self, project_id: int, profile_id: str) -> tuple[ProfileInfo, Profile]:
        """A stored profile with its samples. NotFound if missing."""
        with self.db.tx(write=False) as c:
            row = c.one(
                f"SELECT {_INFO_COLUMNS}, data FROM profiles WHERE project_id = ? AND profile_id = ?",
                (project_id, profile_id),
            )
        if row is None:
            raise NotFound(f"no stored profile {profile_id}")
        return _info(row), Profile.from_json(_json.unpack_event(bytes(row[11])))

    def load_profiles(
        self, project_id: int, name: str, *, since: float, release: str | None = None, limit: int = 50
    ) -> list[Profile]:
        """The newest stored profiles of ``name`` (for an aggregated flame graph)."""
        where = "project_id = ? AND name = ? AND hour >= ?"
        params: list[Any] = [project_id, name, hour_start(since)]
        if release is not None:
            where += " AND release = ?"
            params.append(release)
        with self.db.tx(write=False) as c:
            rows = c.all(
                f"SELECT data FROM profiles WHERE {where} ORDER BY start_timestamp DESC, id DESC LIMIT ?",
                [*params, limit],
            )
        return [Profile.from_json(_json.unpack_event(bytes(r[0]))) for r in rows]

    def profiles_of_events(self, project_id: int | None, event_ids: list[str]) -> dict[str, tuple[int, str]]:
        """transaction event id -> (project id, profile id) of a stored profile of it (in any
        project when ``project_id`` is None)."""
        out: dict[str, tuple[int, str]] = {}
        with self.db.tx(write=False) as c:
            for start in range(0, len(event_ids), 500):
                chunk = [e for e in event_ids[start : start + 500] if e]
                if not chunk:
                    continue
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT event_id, project_id, profile_id FROM profiles WHERE event_id IN ({marks})"
                params: list[Any] = list(chunk)
                if project_id is not None:
                    sql += " AND project_id = ?"
                    params.append(project_id)
                for event_id, owner, profile_id in c.all(sql + " ORDER BY id", params):
                    out.setdefault(event_id, (int(owner), profile_id))
        return out
