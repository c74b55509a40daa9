"""CLI commands of profiles: ``tripwire profile functions`` and ``tripwire profile regression``
(docs/profiling.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .cli_performance import _open
from .normalize import trim
from .performance.service import parse_since
from .profiling import collapsed, service
from .profiling.model import MAX_NAME, MAX_RELEASE


def add_profile_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    profile = sub.add_parser("profile", parents=[common], help="profiles: slowest functions, regressions")
    psub = profile.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("functions", "a transaction's slowest functions (self and total share of its samples)"),
        ("regression", "each function's share of a transaction, this release vs the previous"),
    ):
        p = psub.add_parser(action, parents=[common], help=text)
        p.add_argument("--project", required=True, help="project name or id")
        p.add_argument("--transaction", required=True, help="transaction name (e.g. the route)")
        p.add_argument("--release", default=None, help="only this release (regression: the newer one)")
        p.add_argument("--since", default="24h", help="time range back from now: 1h, 24h, 7d (default 24h)")
        if action == "functions":
            p.add_argument("--limit", type=int, default=30, help="rows (default 30)")
    imp = psub.add_parser(
        "import",
        parents=[common],
        help="import a collapsed-stack file (py-spy raw/collapsed, profiling.sampling)",
    )
    imp.add_argument("file", help="the file ('-' for standard input)")
    imp.add_argument("--project", required=True, help="project name or id")
    imp.add_argument(
        "--transaction", default=collapsed.IMPORTED, help="name to file it under (default (imported))"
    )
    imp.add_argument("--release", default="", help="release to file it under")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _import(args: argparse.Namespace, store: Any, project: Any) -> dict[str, Any]:
    if args.file == "-":
        stacks = collapsed.parse(sys.stdin)
    else:
        with open(args.file, encoding="utf-8", errors="replace") as f:
            stacks = collapsed.parse(f)
    if not stacks:
        raise ValueError(f"{args.file}: no stacks in it")
    profile = collapsed.to_profile(
        stacks, name=trim(args.transaction, MAX_NAME), release=trim(args.release, MAX_RELEASE)
    )
    store.profiles.add_profile(project.id, profile)
    return {
        "profile_id": profile.profile_id,
        "transaction": profile.transaction_name,
        "stacks": len(profile.stacks),
        "samples": len(profile.samples),
    }


def cmd_profile(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        project = store.accounts.get_project(args.project)
        if args.action == "import":
            done = _import(args, store, project)
            text = (
                f"imported {done['samples']} samples ({done['stacks']} stacks) as {done['transaction']},"
                f" profile {done['profile_id']}"
            )
            print(json.dumps(done) if getattr(args, "json", False) else text)
            return 0
        until = time.time()
        since = until - parse_since(args.since)
        if args.action == "functions":
            totals, rows = service.functions(
                store, project, args.transaction, since, until, release=args.release, limit=max(1, args.limit)
            )
            keys = ("function", "module", "file", "self_share", "total_share", "samples")
            data: Any = [{k: r[k] for k in keys} for r in rows]
            lines = [
                f"{args.transaction}: {totals.samples} samples in {totals.profiles} profiles"
                f" ({_percent(totals.idle / totals.samples if totals.samples else 0.0)} idle)",
                f"{'SELF':>7} {'TOTAL':>7} {'SAMPLES':>8}  FUNCTION",
            ]
            lines += [
                f"{_percent(r['self_share']):>7} {_percent(r['total_share']):>7} {r['samples']:>8}"
                f"  {r['function']} ({r['module'] or r['file']})"
                for r in data
            ]
            text = "\n".join(lines) if data else f"no profile samples of {args.transaction}"
        else:
            data = service.regression(store, project, args.transaction, since, until, release=args.release)
            lines = [f"{args.transaction}: {data['release']} vs {data['previous_release'] or '(none)'}"]
            lines += [
                f"{_percent(r['self_share']):>7} {_percent(r['previous_self_share']):>7}"
                f" {r['change'] * 100:+6.1f}  {r['function']} ({r['module'] or r['file']})"
                for r in data["functions"]
            ]
            text = "\n".join(lines)
        if getattr(args, "json", False):
            print(json.dumps(data, indent=2, default=str))
        else:
            print(text)
    finally:
        store.close()
    return 0
