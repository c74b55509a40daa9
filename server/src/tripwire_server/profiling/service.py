"""The profiling views shared by the JSON API, the CLI and the pages (store in, plain data out)."""

from __future__ import annotations

from typing import Any

from ..store import Project, Store
from ..store.profile_records import FunctionRow, ProfileTotals
from .aggregate import Node, flame_tree

#: Profiles merged into an aggregated flame graph, at most (the newest).
MAX_MERGED = 50


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def function_json(row: FunctionRow, totals: ProfileTotals) -> dict[str, Any]:
    return {
        "function": row.function,
        "module": row.module,
        "file": row.file,
        "self_share": _share(row.self_samples, totals.samples),
        "total_share": _share(row.total_samples, totals.samples),
        "samples": row.self_samples,
        "total_samples": row.total_samples,
    }


def functions(
    store: Store,
    project: Project,
    transaction: str,
    since: float,
    until: float,
    *,
    release: str | None = None,
    limit: int = 100,
) -> tuple[ProfileTotals, list[dict[str, Any]]]:
    """The slowest functions of a transaction: ``{function, module, file, self_share,
    total_share, samples}`` by self share (of all the samples of the transaction's thread), then
    total share. ``samples`` is the function's self samples; idle frames are never listed."""
    totals, rows = store.profiles.profile_functions(project.id, transaction, since, until, release=release)
    rows.sort(key=lambda r: (-r.self_samples, -r.total_samples, r.function, r.module, r.file))
    return totals, [function_json(r, totals) for r in rows[:limit]]


def regression(
    store: Store,
    project: Project,
    transaction: str,
    since: float,
    until: float,
    *,
    release: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Each function's share of the transaction's time in ``release`` (default: the newest) and
    in the release before it, the biggest growth in self share first."""
    releases = store.profiles.profile_releases(project.id, transaction, since)
    current = release if release is not None else (releases[0] if releases else None)
    previous = None
    if current is not None and current in releases:
        index = releases.index(current)
        previous = releases[index + 1] if index + 1 < len(releases) else None
    out: dict[str, Any] = {
        "transaction": transaction,
        "release": current,
        "previous_release": previous,
        "releases": releases,
        "functions": [],
    }
    if current is None:
        return out
    now_totals, now_rows = store.profiles.profile_functions(
        project.id, transaction, since, until, release=current
    )
    before: dict[tuple[str, str, str], FunctionRow] = {}
    before_totals = ProfileTotals()
    if previous is not None:
        before_totals, before_rows = store.profiles.profile_functions(
            project.id, transaction, since, until, release=previous
        )
        before = {(r.function, r.module, r.file): r for r in before_rows}
    rows: list[tuple[FunctionRow | None, FunctionRow | None]] = []
    for r in now_rows:
        old = before.pop((r.function, r.module, r.file), None)
        rows.append((r, old))
    rows.extend((None, old) for old in before.values())
    table: list[dict[str, Any]] = []
    for now, old in rows:
        ref = now or old
        assert ref is not None
        self_now = _share(now.self_samples, now_totals.samples) if now else 0.0
        self_before = _share(old.self_samples, before_totals.samples) if old else None
        table.append(
            {
                "function": ref.function,
                "module": ref.module,
                "file": ref.file,
                "self_share": self_now,
                "previous_self_share": self_before,
                "total_share": _share(now.total_samples, now_totals.samples) if now else 0.0,
                "previous_total_share": _share(old.total_samples, before_totals.samples) if old else None,
                "change": round(self_now - (self_before or 0.0), 6),
            }
        )
    table = [t for t in table if t["self_share"] or t["previous_self_share"]]
    table.sort(key=lambda t: (-abs(t["change"]), -t["self_share"], t["function"]))
    out["functions"] = table[:limit]
    out["samples"] = now_totals.samples
    out["previous_samples"] = before_totals.samples
    return out


def aggregated_tree(
    store: Store, project: Project, transaction: str, since: float, *, release: str | None = None
) -> tuple[Node, int]:
    """The call tree merged from the newest stored profiles of a transaction: ``(tree, profiles)``."""
    profiles = store.profiles.load_profiles(
        project.id, transaction, since=since, release=release, limit=MAX_MERGED
    )
    return flame_tree(profiles), len(profiles)
