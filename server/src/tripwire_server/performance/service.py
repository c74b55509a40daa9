"""The performance views shared by the JSON API, the CLI and the pages (store in, plain data out)."""

from __future__ import annotations

import re
from typing import Any

from ..store import NotFound, Project, Store
from . import histogram, report
from .issues import N_PLUS_ONE

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 3600, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The longest range a view covers (rollups are kept 90 days by default).
MAX_RANGE = 90 * 86400


def parse_since(text: str | None, default: str = "24h") -> float:
    """``"1h"``, ``"30m"``, ``"7d"``, ``"2w"`` (a bare number means hours) -> seconds."""
    match = _SINCE.match(text or default)
    if match is None:
        raise ValueError(f"bad time range {text!r}: use e.g. 30m, 1h, 24h, 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_RANGE:
        raise ValueError(f"the time range must be between 1s and {MAX_RANGE // 86400} days")
    return seconds


def table(
    store: Store,
    project: Project,
    since: float,
    until: float,
    *,
    environment: str | None = None,
    release: str | None = None,
    search: str | None = None,
    transaction: str | None = None,
) -> list[dict[str, Any]]:
    """One row per transaction name and op (``tripwire performance``), busiest first."""
    threshold = store.performance.apdex_threshold(project.id)
    rows, hists = store.performance.perf_table(
        project.id, since, until, environment=environment, release=release, name=transaction
    )
    minutes = (until - since) / 60
    out = []
    needle = (search or "").strip().lower()
    for stats in report.summarize(rows):
        stats.histogram = hists.get((stats.transaction, stats.op), {})
        if needle and needle not in stats.transaction.lower():
            continue
        row = stats.to_json(threshold, minutes)
        row["sparkline"] = report.sparkline(stats, since, until)
        out.append(row)
    return out


def summary(
    store: Store,
    project: Project,
    name: str,
    since: float,
    until: float,
    *,
    environment: str | None = None,
    release: str | None = None,
) -> dict[str, Any]:
    """Everything the transaction summary shows."""
    threshold = store.performance.apdex_threshold(project.id)
    # At most hour rows: the chart over time needs them (a week is 168 points per key).
    res = 60 if until - since <= 6 * 3600 else 3600
    res, rows = store.performance.perf_rollups(
        project.id, since, until, environment=environment, release=release, name=name, res=res
    )
    stats = report.Stats(name, "")
    for row in rows:
        stats.add(row)
    ops = sorted({r.op for r in rows})
    out = stats.to_json(threshold, (until - since) / 60)
    out["op"] = ", ".join(ops)
    out["apdex_threshold_ms"] = threshold
    out["series"] = report.series(rows, res, since, until)
    out["histogram"] = report.distribution(stats.histogram)
    out["precision"] = histogram.RELATIVE_ACCURACY
    out["span_ops"] = [
        {
            "span_op": o.span_op,
            "count": o.count,
            "total_ms": round(o.total_ms, 3),
            "avg_per_transaction_ms": round(o.total_ms / stats.count, 3) if stats.count else None,
        }
        for o in store.performance.perf_span_ops(
            project.id, name, since, until, environment=environment, release=release
        )
    ]
    out["samples"] = [sample_json(s) for s in store.performance.list_samples(project.id, name, since=since)]
    out["issues"] = [
        {"id": i.id, "title": i.title, "type": i.type, "event_count": i.event_count, "status": i.status}
        for i in store.performance.transaction_issues(project.id, name)
    ]
    # The release comparison ignores the release filter: it compares releases.
    _res, all_releases = store.performance.perf_rollups(
        project.id, since, until, environment=environment, name=name
    )
    out["releases"] = report.releases_p95(all_releases)
    return out


def sample_json(sample: Any) -> dict[str, Any]:
    return {
        "trace_id": sample.trace_id,
        "event_id": sample.event_id,
        "duration_ms": round(sample.duration_ms, 3),
        "timestamp": sample.timestamp,
        "failed": sample.failed,
        "environment": sample.environment,
        "release": sample.release,
    }


def trace(store: Store, trace_id: str, visible: set[int] | None = None) -> dict[str, Any]:
    """``tripwire trace show``: every stored span of the trace (roots included), with its errors.

    A trace crosses projects: with ``visible`` (the ids of the projects the caller may see; None
    for all), the spans and errors of the other projects are left out, as if they were not stored.
    """
    names = {p.id: p.name for p in store.accounts.list_projects()}
    txs, events = store.performance.get_trace(trace_id.strip().lower())
    if visible is not None:
        txs = [tx for tx in txs if tx.project_id in visible]
        events = [e for e in events if e.project_id in visible]
    spans: list[dict[str, Any]] = []
    for tx in txs:
        for span in [tx.root_span(), *tx.spans]:
            spans.append(
                {
                    "span_id": span.span_id,
                    "parent_span_id": span.parent_span_id,
                    "op": span.op,
                    "description": span.description,
                    "start_timestamp": span.start_timestamp,
                    "timestamp": span.timestamp,
                    "status": span.status,
                    "project": names.get(tx.project_id, str(tx.project_id)),
                    "transaction": tx.name,
                    "event_id": tx.event_id,
                    "is_segment": span.span_id == tx.span_id,
                }
            )
    # Parents first when they start together: the longer span first.
    spans.sort(key=lambda s: (s["start_timestamp"], -s["timestamp"]))
    issues: dict[int, Any] = {}
    for e in events[:50]:
        if e.issue_id not in issues:
            try:
                issues[e.issue_id] = store.issues.get_issue(e.issue_id)
            except NotFound:  # removed by retention since
                issues[e.issue_id] = None
    return {
        "trace_id": trace_id,
        "spans": spans,
        "errors": [
            {
                "event_id": e.event_id,
                "issue_id": e.issue_id,
                "span_id": e.span_id,
                "project": names.get(e.project_id, str(e.project_id)),
                "timestamp": e.timestamp,
                "title": issues[e.issue_id].title if issues.get(e.issue_id) else "",
                "type": issues[e.issue_id].type if issues.get(e.issue_id) else "",
            }
            for e in events
        ],
        "transactions": len(txs),
    }


def waterfall(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans of :func:`trace` in tree order with depth and offsets (percent of the trace)."""
    spans = data["spans"]
    if not spans:
        return []
    start = min(s["start_timestamp"] for s in spans)
    end = max(s["timestamp"] for s in spans)
    total = max(end - start, 1e-9)
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(s)
    error_spans = {e["span_id"] for e in data["errors"] if e.get("span_id") and e["type"] != N_PLUS_ONE}
    issue_spans = {e["span_id"] for e in data["errors"] if e.get("span_id") and e["type"] == N_PLUS_ONE}
    out: list[dict[str, Any]] = []
    stack = [(s, 0) for s in reversed(children.get(None, []))]
    visited: set[int] = set()
    while stack or len(visited) < len(spans):
        if not stack:
            # Spans whose parents form a cycle (hostile data) are shown at the top level.
            stack = [(next(s for s in spans if id(s) not in visited), 0)]
        span, depth = stack.pop()
        if id(span) in visited:
            continue  # a cycle of parent ids in hostile data
        visited.add(id(span))
        out.append(
            {
                **span,
                "depth": min(depth, 30),
                "left_pct": round((span["start_timestamp"] - start) / total * 100, 3),
                "width_pct": max(0.2, round((span["timestamp"] - span["start_timestamp"]) / total * 100, 3)),
                "duration_ms": round((span["timestamp"] - span["start_timestamp"]) * 1000, 3),
                "has_error": span["span_id"] in error_spans,
                "has_issue": span["span_id"] in issue_spans,
            }
        )
        stack.extend((c, depth + 1) for c in reversed(children.get(span["span_id"], [])))
    return out
