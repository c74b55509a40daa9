"""The ``tripwire alert ...`` and ``tripwire monitor ...`` commands, and the alert options of
``tripwire serve`` (docs/alerts.md, docs/crons.md). Like every command they work on the store
directly and take ``--json``."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from .alerts.rules import (
    DEFAULT_COOLDOWN,
    DEFAULT_DIGEST,
    FORMATS,
    LEVELS,
    TRIGGERS,
    Filters,
    RuleSpec,
    percentile_of,
)
from .alerts.settings import AlertSettings
from .alerts.ssrf import check_syntax
from .config import CollectorConfig, default_data_dir, default_database_url
from .monitors import describe_schedule
from .store import Store, StoreError, open_store

ENV_SMTP_URL = "TRIPWIRE_SMTP_URL"
ENV_SMTP_FROM = "TRIPWIRE_SMTP_FROM"
ENV_ALLOW_WEBHOOK_HOSTS = "TRIPWIRE_ALLOW_WEBHOOK_HOSTS"
ENV_ALERT_TIMEOUT = "TRIPWIRE_ALERT_TIMEOUT"


def _env_hosts() -> list[str]:
    return [h.strip() for h in os.environ.get(ENV_ALLOW_WEBHOOK_HOSTS, "").split(",") if h.strip()]


def add_alert_serve_options(serve: argparse.ArgumentParser) -> None:
    """``--smtp-url``, ``--smtp-from`` and ``--allow-webhook-host`` on ``tripwire serve``."""
    serve.add_argument(
        "--smtp-url",
        default=os.environ.get(ENV_SMTP_URL),
        help="where alert e-mail goes: smtp://[user:pass@]host:port[?starttls=1|tls=1]"
        f" (default ${ENV_SMTP_URL})",
    )
    serve.add_argument(
        "--smtp-from",
        default=os.environ.get(ENV_SMTP_FROM),
        help=f"sender of alert e-mail (${ENV_SMTP_FROM})",
    )
    serve.add_argument(
        "--allow-webhook-host",
        action="append",
        default=None,
        metavar="HOST",
        help="a host, address or network (10.0.0.0/8) alert webhooks may reach although it is not"
        f" public; repeatable (default ${ENV_ALLOW_WEBHOOK_HOSTS}, comma-separated)",
    )
    serve.add_argument(
        "--alert-timeout",
        type=float,
        default=float(os.environ.get(ENV_ALERT_TIMEOUT) or 10.0),
        metavar="SECONDS",
        help=f"timeout of each step of a webhook or SMTP exchange (default 10; ${ENV_ALERT_TIMEOUT})",
    )


def alert_settings(args: argparse.Namespace) -> AlertSettings:
    """The :class:`AlertSettings` of ``tripwire serve``'s flags (checked now, not at first send)."""
    hosts = args.allow_webhook_host if args.allow_webhook_host is not None else _env_hosts()
    settings = AlertSettings(
        smtp_url=args.smtp_url,
        smtp_from=args.smtp_from,
        allow_webhook_hosts=tuple(hosts),
        timeout=args.alert_timeout,
    )
    settings.validate()
    return settings


def add_alert_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``alert`` and ``monitor`` command groups."""
    alert = sub.add_parser("alert", parents=[common], help="manage alert rules")
    asub = alert.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = asub.add_parser("create", parents=[common], help="create an alert rule")
    create.add_argument("--project", required=True, help="project name or id")
    create.add_argument("--on", required=True, choices=TRIGGERS, help="what fires the rule")
    create.add_argument("--webhook", help="URL to POST to")
    create.add_argument(
        "--format", default="json", choices=FORMATS, help="webhook body format (default json)"
    )
    create.add_argument("--email", help="address to e-mail (needs serve --smtp-url)")
    create.add_argument(
        "--secret", help="HMAC key of X-Tripwire-Signature (default: generated, printed once)"
    )
    create.add_argument("--name", default="", help="a label")
    create.add_argument("--threshold", type=int, help="frequency: events; users: users")
    create.add_argument("--window", type=int, metavar="MINUTES", help="frequency/users/p95: the time window")
    create.add_argument("--once", action="store_true", help="frequency: only the first time it goes over")
    create.add_argument("--below", type=float, metavar="PERCENT", help="crash-free: alert below this rate")
    create.add_argument("--min-sessions", type=int, help="crash-free: only with at least this many sessions")
    create.add_argument(
        "--above-ms", type=float, metavar="MS", help="p95: alert when the percentile is over this (ms)"
    )
    create.add_argument(
        "--percentile",
        metavar="P",
        help="p95: the percentile watched: p50, p75, p95 (default) or p99",
    )
    create.add_argument(
        "--min-count",
        type=int,
        metavar="N",
        help="p95: only with at least N transactions in the window (default 20; 100 for p99)",
    )
    create.add_argument("--transaction", metavar="NAME", help="p95: only this transaction (default: each)")
    create.add_argument("--environment", help="only events/sessions/monitors of this environment")
    create.add_argument("--level", choices=LEVELS, help="only events of this level or worse")
    create.add_argument("--release", help="only events/sessions of this release")
    create.add_argument(
        "--tag", action="append", default=[], metavar="KEY:VALUE", help="only events with this tag"
    )
    create.add_argument(
        "--cooldown",
        type=float,
        default=DEFAULT_COOLDOWN / 60,
        metavar="MINUTES",
        help="quiet time per rule and issue/release/monitor (default 30)",
    )
    create.add_argument(
        "--digest",
        type=float,
        default=DEFAULT_DIGEST,
        metavar="SECONDS",
        help="at most one message per this many seconds; what fires meanwhile is bundled (default 60)",
    )
    create.add_argument(
        "--allow-webhook-host",
        action="append",
        default=None,
        metavar="HOST",
        help=f"accept a non-public webhook host (as serve does; default ${ENV_ALLOW_WEBHOOK_HOSTS})",
    )
    alist = asub.add_parser("list", parents=[common], help="list alert rules")
    alist.add_argument("--project", help="project name or id (default: all)")
    test = asub.add_parser("test", parents=[common], help="send a test notification (through the server)")
    test.add_argument("id", type=int)
    test.add_argument("--wait", type=float, default=15.0, metavar="SECONDS", help="wait for the result")
    delete = asub.add_parser("delete", parents=[common], help="delete an alert rule and its history")
    delete.add_argument("id", type=int)
    history = asub.add_parser("history", parents=[common], help="the rule's latest notifications")
    history.add_argument("id", type=int)
    history.add_argument("--limit", type=int, default=50)

    monitor = sub.add_parser("monitor", parents=[common], help="cron monitors")
    msub = monitor.add_subparsers(dest="action", required=True, metavar="ACTION")
    mlist = msub.add_parser("list", parents=[common], help="list a project's monitors")
    mlist.add_argument("--project", required=True, help="project name or id")
    mshow = msub.add_parser("show", parents=[common], help="a monitor and its latest check-ins")
    mshow.add_argument("slug")
    mshow.add_argument("--project", required=True, help="project name or id")


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


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _spec(args: argparse.Namespace) -> RuleSpec:
    tags = []
    for tag in args.tag:
        key, sep, value = tag.partition(":")
        if not sep:
            raise StoreError(f"--tag {tag!r}: use KEY:VALUE")
        tags.append((key, value))
    percentile = percentile_of(args.percentile)  # a RuleError is a ValueError: the CLI reports it
    if args.webhook:
        hosts = args.allow_webhook_host if args.allow_webhook_host is not None else _env_hosts()
        check_syntax(args.webhook, hosts)
    return RuleSpec(
        trigger=args.on,
        webhook_url=args.webhook,
        format=args.format,
        email=args.email,
        secret=args.secret,
        name=args.name,
        threshold=args.threshold,
        window_minutes=args.window,
        below=args.below,
        min_sessions=args.min_sessions,
        above_ms=args.above_ms,
        percentile=percentile,
        min_count=args.min_count,
        once=args.once,
        filters=Filters(
            environment=args.environment,
            level=args.level,
            release=args.release,
            tags=tuple(sorted(tags)),
            transaction=args.transaction or None,
        ),
        cooldown=args.cooldown * 60,
        digest=args.digest,
    )


def cmd_alert(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        if args.action == "create":
            project = store.accounts.get_project(args.project)
            rule = store.alerts.create_alert_rule(project.id, _spec(args))
            target = " and ".join(x for x in (rule.webhook_url, rule.email) if x)
            _out(
                args,
                rule.to_json(with_secret=True),
                f"created alert rule {rule.id} ({rule.trigger}) of project {project.name!r} -> {target}\n"
                f"webhook secret (X-Tripwire-Signature): {rule.secret}",
            )
        elif args.action == "list":
            project_id = store.accounts.get_project(args.project).id if args.project else None
            rules = store.alerts.list_alert_rules(project_id)
            lines = [
                f"{r.id:>4}  {r.project_id:>4}  {r.trigger:<11} {r.name:<20} "
                + " ".join(x for x in (r.webhook_url, r.email) if x)
                for r in rules
            ]
            # Whoever runs the CLI reads the database: the full URL, but not the secret.
            data = [{**r.to_json(), "webhook_url": r.webhook_url} for r in rules]
            _out(args, data, "\n".join(lines) or "no alert rules")
        elif args.action == "delete":
            store.alerts.delete_alert_rule(args.id)
            _out(args, {"deleted": args.id}, f"deleted alert rule {args.id}")
        elif args.action == "history":
            store.alerts.get_alert_rule(args.id)
            entries = store.alerts.alert_history(args.id, max(1, args.limit))
            lines = [
                f"{_when(n.at)}  {n.status:<10} {n.target:<8} issue {n.issue_id or '-':<6} "
                + (f"x{n.count} " if n.count > 1 else "")
                + (n.error or "")
                for n in entries
            ]
            _out(args, [n.to_json() for n in entries], "\n".join(lines) or "no notifications yet")
        else:
            return _test(args, store)
    finally:
        store.close()
    return 0


def _test(args: argparse.Namespace, store: Store) -> int:
    """Queue a test message; the running server sends it. Wait for the outcome unless --wait 0."""
    uids = store.alerts.queue_test_notification(args.id)
    deadline = time.monotonic() + max(0.0, args.wait)
    while True:
        found = [store.alerts.get_notification(uid) for uid in uids]
        if all(n.status != "pending" for n in found) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    result = [n.to_json() for n in found]
    pending = [n for n in found if n.status == "pending"]
    failed = [n for n in found if n.status == "failed"]
    if args.wait <= 0:
        text = "queued " + ", ".join(uids) + " (tripwire serve sends it)"
    else:
        text = "\n".join(
            f"{n.target}: {n.status}"
            + (f" ({n.error})" if n.error else "")
            + (" - is tripwire serve running?" if n.status == "pending" else "")
            for n in found
        )
    _out(args, result, text)
    return 1 if failed or (pending and args.wait > 0) else 0


def cmd_monitor(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        project = store.accounts.get_project(args.project)
        if args.action == "list":
            items = store.monitors.list_monitors(project.id)
            lines = [
                f"{m.slug:<28} {m.status:<11} last {_when(m.last_checkin)}  next {_when(m.next_expected)}"
                f"  ({describe_schedule(m.schedule)})"
                for m in items
            ]
            _out(args, [m.to_json() for m in items], "\n".join(lines) or "no monitors")
        else:
            m = store.monitors.get_monitor(project.id, args.slug)
            runs = store.monitors.list_checkins(m.id)
            data = {**m.to_json(), "checkins": [c.to_json() for c in runs]}
            text = "\n".join(
                [f"{m.slug}: {m.status}, {describe_schedule(m.schedule)}, next {_when(m.next_expected)}"]
                + [f"  {_when(c.started_at)}  {c.status:<11} {c.duration or '':>8}" for c in runs]
            )
            _out(args, data, text)
    finally:
        store.close()
    return 0


__all__ = ["add_alert_commands", "add_alert_serve_options", "alert_settings", "cmd_alert", "cmd_monitor"]
