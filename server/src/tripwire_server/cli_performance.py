"""CLI commands of performance data: ``tripwire performance``, ``tripwire trace show`` and
``tripwire event list --issue N`` (docs/performance.md)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .config import CollectorConfig, default_data_dir, default_database_url
from .performance import service
from .store import Store, open_store


def add_performance_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    perf = sub.add_parser(
        "performance", parents=[common], help="transactions: count, failure rate, Apdex, p50..p99"
    )
    perf.add_argument("--project", required=True, help="project name or id")
    perf.add_argument("--since", default="1h", help="time range back from now: 30m, 1h, 24h, 7d (default 1h)")
    perf.add_argument("--environment", default=None)
    perf.add_argument("--release", default=None)
    perf.add_argument("--transaction", default=None, help="one transaction, with its sampled traces")
    trace = sub.add_parser("trace", parents=[common], help="show traces")
    tsub = trace.add_subparsers(dest="action", required=True, metavar="ACTION")
    tshow = tsub.add_parser("show", parents=[common], help="every span of a trace, across projects")
    tshow.add_argument("trace_id")


def add_event_list(esub: Any, common: argparse.ArgumentParser) -> None:
    elist = esub.add_parser("list", parents=[common], help="an issue's events with their trace ids")
    elist.add_argument("--issue", type=int, required=True)
    elist.add_argument("--limit", type=int, default=50)


def _open(args: argparse.Namespace) -> Store:
    config = CollectorConfig(
        data_dir=getattr(args, "data_dir", None) or default_data_dir(),
        database_url=getattr(args, "database_url", None) or default_database_url(),
    )
    store = open_store(config.effective_database_url)
    store.migrate()
    return store


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("transaction", "op", "count", "failure_rate", "apdex", "p50_ms", "p75_ms", "p95_ms", "p99_ms")
    return {k: row.get(k) for k in keys}


def cmd_performance(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        project = store.accounts.get_project(args.project)
        until = time.time()
        since = until - service.parse_since(args.since)
        rows = service.table(
            store,
            project,
            since,
            until,
            environment=args.environment,
            release=args.release,
            transaction=args.transaction,
        )
        if args.transaction is None:
            lines = [
                f"{r['transaction'][:40]:<40} {r['op'][:14]:<14} {r['count']:>8} {r['failure_rate']:>6.1%}"
                f" {'-' if r['apdex'] is None else format(r['apdex'], '.2f'):>5}"
                f" {_ms(r['p50_ms']):>9} {_ms(r['p95_ms']):>9} {_ms(r['p99_ms']):>9}"
                for r in rows
            ]
            header = (
                f"{'TRANSACTION':<40} {'OP':<14} {'COUNT':>8} {'FAIL':>6} {'APDEX':>5}"
                f" {'P50 ms':>9} {'P95 ms':>9} {'P99 ms':>9}"
            )
            _out(
                args,
                [_json_row(r) for r in rows],
                "\n".join([header, *lines]) if lines else "no transactions",
            )
            return 0
        samples = store.performance.list_samples(project.id, args.transaction, since=since)
        row = _json_row(rows[0]) if rows else {**_json_row({}), "transaction": args.transaction, "count": 0}
        row["samples"] = [
            {k: s[k] for k in ("trace_id", "event_id", "duration_ms", "timestamp")}
            for s in (service.sample_json(x) for x in samples)
        ]
        text = [
            f"{row['transaction']}: {row['count']} transactions, p50 {_ms(row['p50_ms'])} ms,"
            f" p95 {_ms(row['p95_ms'])} ms, p99 {_ms(row['p99_ms'])} ms"
        ]
        text += [f"  trace {s['trace_id']}  {s['duration_ms']:.1f} ms" for s in row["samples"]]
        _out(args, row, "\n".join(text))
    finally:
        store.close()
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        data = service.trace(store, args.trace_id)
        if not data["spans"] and not data["errors"]:
            raise ValueError(f"no stored transaction or event of trace {args.trace_id}")
        out = {
            "trace_id": data["trace_id"],
            "spans": [
                {
                    k: s[k]
                    for k in (
                        "span_id",
                        "parent_span_id",
                        "op",
                        "description",
                        "start_timestamp",
                        "timestamp",
                        "project",
                    )
                }
                for s in data["spans"]
            ],
            "errors": [{k: e[k] for k in ("event_id", "issue_id", "span_id")} for e in data["errors"]],
        }
        lines = [f"trace {data['trace_id']}: {len(out['spans'])} spans, {len(out['errors'])} errors"]
        for s in service.waterfall(data):
            lines.append(
                f"{'  ' * s['depth']}{s['op']} {s['description'][:60]!r} [{s['project']}]"
                f" {s['duration_ms']:.1f} ms" + ("  ERROR" if s["has_error"] else "")
            )
        _out(args, out, "\n".join(lines))
    finally:
        store.close()
    return 0


def cmd_event_list(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        issue = store.issues.get_issue(args.issue)
        events = store.issues.list_events(issue.id, limit=max(1, min(args.limit, 1000)))
        traces = store.performance.trace_ids(issue.project_id, [e.event_id for e in events])
        rows: list[dict[str, Any]] = [
            {"id": e.event_id, "timestamp": e.timestamp, "trace_id": traces.get(e.event_id)} for e in events
        ]
        lines = [
            f"{r['id']}  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(r['timestamp']))}"
            f"  {r['trace_id'] or '-'}"
            for r in rows
        ]
        _out(args, rows, "\n".join(lines) if lines else "no events")
    finally:
        store.close()
    return 0
