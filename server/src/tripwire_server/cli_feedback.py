"""``tripwire feedback`` (what end users wrote) and ``tripwire logs`` (``--json`` for scripts)."""

from __future__ import annotations

import argparse
from typing import Any

from .cli_alerts import _open, _out, _when


def add_feedback_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``feedback`` to the CLI's subcommands."""
    feedback = sub.add_parser("feedback", parents=[common], help="list user feedback of a project")
    feedback.add_argument("--project", required=True, help="project name or id")
    feedback.add_argument("--issue", type=int, default=None, help="only the feedback on this issue")
    feedback.add_argument("--limit", type=int, default=100)


def cmd_feedback(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        project = store.accounts.get_project(args.project)
        rows = store.feedback.list_feedback(
            project.id, issue_id=args.issue, limit=max(1, min(args.limit, 10_000))
        )
    finally:
        store.close()
    data = [
        {
            "message": f.message,
            "email": f.email,
            "name": f.name,
            "event_id": f.event_id,
            "issue_id": f.issue_id,
            "received_at": f.received_at,
        }
        for f in rows
    ]
    lines = []
    for f in rows:
        who = f.name or f.email or "anonymous"
        about = f" (issue {f.issue_id})" if f.issue_id else (f" (event {f.event_id})" if f.event_id else "")
        lines.append(f"{_when(f.received_at)}  {who}{about}: {f.message}")
    _out(args, data, "\n".join(lines) if lines else "no feedback")
    return 0


def add_logs_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``logs`` to the CLI's subcommands."""
    logs = sub.add_parser("logs", parents=[common], help="search a project's structured logs")
    logs.add_argument("--project", required=True, help="project name or id")
    logs.add_argument("--level", default=None, help="trace, debug, info, warn, error or fatal")
    logs.add_argument("--query", default="", help="words that must all be in the message")
    logs.add_argument("--attribute", default="", help="key=value pairs separated by spaces")
    logs.add_argument("--limit", type=int, default=100)


def cmd_logs(args: argparse.Namespace) -> int:
    from .logs import parse_attributes
    from .store.log_records import LogQuery

    store = _open(args)
    try:
        project = store.accounts.get_project(args.project)
        query = LogQuery(
            level=args.level,
            text=args.query,
            attributes=parse_attributes(args.attribute),
            limit=max(1, min(args.limit, 10_000)),
        )
        rows = store.logs.list_logs(project.id, query)
    finally:
        store.close()
    data = [r.to_json() for r in rows]
    lines = [f"{_when(r.timestamp)}  {r.level:<5}  {r.body}" for r in rows]
    _out(args, data, "\n".join(lines) if lines else "no logs")
    return 0
