"""The ``tripwire`` command line: run the collector and script it.

Every command takes ``--data-dir`` / ``--database-url`` (the same store ``serve`` uses) and
``--json`` (machine-readable output). See docs/collector.md for the full reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import logging
import os
import secrets
import socket
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tripwire._dsn import Dsn
from tripwire.reporters.sentry import envelope_items

from .cli_alerts import add_alert_commands, add_alert_serve_options, alert_settings, cmd_alert, cmd_monitor
from .cli_feedback import add_feedback_commands, add_logs_commands, cmd_feedback, cmd_logs
from .cli_performance import (
    add_event_list,
    add_performance_commands,
    cmd_event_list,
    cmd_performance,
    cmd_trace,
)
from .cli_profiling import add_profile_commands, cmd_profile
from .config import CollectorConfig, Limits, default_data_dir, default_database_url
from .store import ApiToken, IssueQuery, NotFound, Store, StoreError, open_store


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="directory of the SQLite database (default: $TRIPWIRE_DATA_DIR or ./tripwire-data)",
    )
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="postgresql://... or sqlite:///PATH"
        " (default: $TRIPWIRE_DATABASE_URL, else SQLite in --data-dir)",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    return common


#: ``tripwire serve`` flags that set a :class:`Limits` field: (flag, field, type, help).
_LIMIT_FLAGS: list[tuple[str, str, type, str]] = [
    ("--max-envelope-compressed", "max_envelope_compressed", int, "bytes of one envelope on the wire"),
    ("--max-envelope-size", "max_envelope_size", int, "bytes of one envelope decompressed"),
    ("--max-event-size", "max_event_size", int, "bytes of one event item or /store/ body"),
    ("--max-store-compressed", "max_store_compressed", int, "bytes of one /store/ body on the wire"),
    ("--max-attachment-size", "max_attachment_size", int, "bytes of one attachment"),
    ("--max-profile-size", "max_profile_size", int, "bytes of one profile or profile_chunk item"),
    ("--max-inflate-ratio", "max_inflate_ratio", int, "decompressed:compressed bytes past 256 KiB (0: none)"),
    ("--max-bytes-in-flight", "max_bytes_in_flight", int, "body bytes all ingest requests hold (0: none)"),
    (
        "--max-bytes-in-flight-per-project",
        "max_bytes_in_flight_per_project",
        int,
        "of those, body bytes one project's requests hold (0: none)",
    ),
    ("--header-timeout", "header_timeout", float, "seconds to send a request's headers"),
    ("--max-request-header-size", "max_request_header_size", int, "bytes of a request's headers"),
    ("--body-min-rate", "body_min_rate", int, "bytes/s a body must average after the grace (0: none)"),
    ("--body-grace", "body_grace", float, "seconds of a body exempt from --body-min-rate"),
    ("--max-connections", "max_connections", int, "open connections; requests past it get 503"),
    ("--refusal-rate", "refusal_rate", int, "refusals/s a client address may keep getting (0: no limit)"),
    ("--refusal-burst", "refusal_burst", int, "refusals a client address may get at once"),
    ("--refusal-hold", "refusal_hold", float, "seconds an address over its refusals waits for a 429"),
    ("--refusal-max-held", "refusal_max_held", int, "connections held per address; more are cut"),
]

#: Addresses that reach only this machine: binding anything else serves plain HTTP to a network.
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def exposure_warning(host: str) -> str | None:
    """The warning ``tripwire serve --host HOST`` prints when it serves plain HTTP beyond this
    machine (None on loopback)."""
    if host in _LOOPBACK or host.startswith("127."):
        return None
    where = "every network interface" if host in ("0.0.0.0", "::", "") else host
    return (
        f"warning: serving plain HTTP on {where}: DSN keys, logins and events cross the network"
        " unencrypted. Put TLS in front (a reverse proxy such as Caddy or nginx; see"
        " docs/collector.md, 'Deploying on the internet') and bind 127.0.0.1 behind it."
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tripwire`` command."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="tripwire",
        description="tripwire: a self-hosted, Sentry-compatible error collector",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the collector")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--public-url", help="base URL SDKs use to reach this server, for DSNs")
    serve.add_argument(
        "--quota-per-minute", type=int, default=0, help="default per-project event quota (0: none)"
    )
    serve.add_argument(
        "--retention-days", type=int, default=90, help="delete events older than this (0: keep)"
    )
    serve.add_argument(
        "--performance-retention-days",
        type=int,
        default=90,
        help="drop performance rollups older than this (0: keep); docs/performance.md",
    )
    serve.add_argument(
        "--sample-retention-days",
        type=int,
        default=30,
        help="drop sampled transactions (the spans of traces) older than this (0: keep)",
    )
    serve.add_argument(
        "--profile-retention-days",
        type=int,
        default=30,
        help="drop profiles and their function aggregates older than this (0: keep); docs/profiling.md",
    )
    serve.add_argument(
        "--retention-max-events",
        type=int,
        default=100_000,
        help="keep at most this many events per project (0: no cap)",
    )
    serve.add_argument(
        "--sqlite-synchronous",
        default="FULL",
        choices=["FULL", "NORMAL"],
        help="FULL survives power loss (default); NORMAL survives process crashes only",
    )
    serve.add_argument("--no-digest", action="store_true", help="only ingest; let other processes digest")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="HTTP processes answering on the port (PostgreSQL only; one digest process whatever N)",
    )
    serve.add_argument(
        "--digest-niceness",
        type=int,
        default=CollectorConfig.digest_niceness,
        metavar="N",
        help="how much lower the digest process's CPU priority is than the server's (os.nice;"
        f" 0: the same; default {CollectorConfig.digest_niceness})",
    )
    add_alert_serve_options(serve)
    serve.add_argument("--log-level", default="warning", help="uvicorn/collector log level (default warning)")
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="proxies trusted to set X-Forwarded-For/-Proto, comma-separated, or '*'"
        " (default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    limits = serve.add_argument_group("limits (docs/collector.md, 'Deploying on the internet')")
    defaults = Limits()
    for flag, field, kind, what in _LIMIT_FLAGS:
        limits.add_argument(
            flag,
            dest=f"limit_{field}",
            type=kind,
            default=getattr(defaults, field),
            metavar="N" if kind is int else "SECONDS",
            help=f"{what} (default {getattr(defaults, field)})",
        )

    demo = sub.add_parser(
        "demo", parents=[common], help="run the collector with a demo service sending errors"
    )
    demo.add_argument("--port", type=int, help="dashboard port (default 8000, or a free one if taken)")
    demo.add_argument("--host", help="collector address (default 127.0.0.1)")
    demo.add_argument("--exit-after", type=float, metavar="SECONDS", help="stop after this many seconds")
    demo.add_argument("--interval", type=float, metavar="SECONDS", help="pause between demo requests")

    project = sub.add_parser("project", parents=[common], help="manage projects")
    psub = project.add_subparsers(dest="action", required=True, metavar="ACTION")
    pcreate = psub.add_parser("create", parents=[common], help="create a project and print its DSN")
    pcreate.add_argument("name")
    psub.add_parser("list", parents=[common], help="list projects with their DSNs")
    pset = psub.add_parser(
        "set", parents=[common], help="set a project's quota, retention and attachment budget"
    )
    pset.add_argument("name", help="project name or id")
    for flag, what in (
        ("--quota-per-minute", "events per minute"),
        ("--retention-days", "days to keep events"),
        ("--retention-max-events", "events to keep at most"),
        ("--attachment-bytes-per-hour", "attachment bytes stored per hour"),
        ("--attachment-bytes-total", "attachment bytes stored in total"),
    ):
        pset.add_argument(flag, type=int, help=f"{what} (0: no limit; -1: back to the server default)")
    pkeys = psub.add_parser("keys", parents=[common], help="list a project's DSN keys (all are accepted)")
    pkeys.add_argument("name", help="project name or id")
    protate = psub.add_parser(
        "rotate-key", parents=[common], help="add a DSN key; the old keys keep working until revoked"
    )
    protate.add_argument("name", help="project name or id")
    prevoke = psub.add_parser("revoke-key", parents=[common], help="stop accepting a DSN key")
    prevoke.add_argument("name", help="project name or id")
    prevoke.add_argument("key", help="the public key to revoke")
    pmembers = psub.add_parser("members", parents=[common], help="list the members of a project")
    pmembers.add_argument("name", help="project name or id")
    for action, what in (("add-member", "let a user see"), ("remove-member", "take away from a user")):
        pmember = psub.add_parser(action, parents=[common], help=f"{what} a project")
        pmember.add_argument("name", help="project name or id")
        pmember.add_argument("username")

    token = sub.add_parser("token", parents=[common], help="manage API tokens")
    tsub = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    tcreate = tsub.add_parser("create", parents=[common], help="create an API token (printed once)")
    tcreate.add_argument("--user", default="admin", help="owner of the token (default admin)")
    tcreate.add_argument("--name", default="", help="a label for the token")
    tcreate.add_argument(
        "--expires-in", type=int, metavar="DAYS", help="refuse the token after DAYS days (default: never)"
    )
    tlist = tsub.add_parser("list", parents=[common], help="list API tokens (never their secrets)")
    tlist.add_argument("--user", help="only this user's tokens")
    trevoke = tsub.add_parser("revoke", parents=[common], help="revoke an API token by id")
    trevoke.add_argument("id", type=int, help="the token id (see: tripwire token list)")

    issues = sub.add_parser("issues", parents=[common], help="list issues")
    issues.add_argument("--project", default=None, help="project name or id (default: the first)")
    issues.add_argument("--query", default="", help="search, e.g. 'is:unresolved level:error timeout'")
    issues.add_argument("--limit", type=int, default=50)

    event = sub.add_parser("event", parents=[common], help="show events")
    esub = event.add_subparsers(dest="action", required=True, metavar="ACTION")
    eshow = esub.add_parser("show", parents=[common], help="print one event's normalized JSON")
    eshow.add_argument("event_id")
    add_event_list(esub, common)

    send = sub.add_parser("send-test", parents=[common], help="send a test event to a DSN")
    send.add_argument("--dsn", required=True)
    send.add_argument("--message", default="tripwire send-test: this is a test error")

    add_alert_commands(sub, common)
    add_feedback_commands(sub, common)
    add_logs_commands(sub, common)
    add_performance_commands(sub, common)
    add_profile_commands(sub, common)

    user = sub.add_parser("user", parents=[common], help="manage dashboard users")
    usub = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    ucreate = usub.add_parser("create", parents=[common], help="create a user")
    ucreate.add_argument("username")
    ucreate.add_argument("--admin", action="store_true", help="may create projects")
    ucreate.add_argument("--password", help="default: $TRIPWIRE_PASSWORD, a prompt, or a generated one")
    usub.add_parser("list", parents=[common], help="list users")
    upass = usub.add_parser(
        "passwd", parents=[common], help="change a user's password (logs them out, revokes their tokens)"
    )
    upass.add_argument("username")
    upass.add_argument("--password", help="default: $TRIPWIRE_PASSWORD, a prompt, or a generated one")
    return parser


# -- helpers -------------------------------------------------------------------------------------


def _config(args: argparse.Namespace, **extra: Any) -> CollectorConfig:
    return CollectorConfig(
        data_dir=getattr(args, "data_dir", None) or default_data_dir(),
        database_url=getattr(args, "database_url", None) or default_database_url(),
        **extra,
    )


def _open(args: argparse.Namespace) -> Store:
    config = _config(args)
    store = open_store(config.effective_database_url)
    store.migrate()
    return store


def _public_url(store: Store) -> str:
    return store.accounts.get_setting("public_url") or CollectorConfig().effective_public_url


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated?)"""
    if args.password:
        return args.password, False
    if os.environ.get("TRIPWIRE_PASSWORD"):
        return os.environ["TRIPWIRE_PASSWORD"], False
    if sys.stdin.isatty() and not getattr(args, "json", False):
        first = getpass.getpass("Password: ")
        if first and first == getpass.getpass("Again: "):
            return first, False
        raise StoreError("the passwords are empty or differ")
    return secrets.token_urlsafe(12), True


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


# -- commands --------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .state import bootstrap

    level = args.log_level.upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING), format="%(levelname)s %(name)s: %(message)s"
    )
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    port = sock.getsockname()[1]
    config = _config(
        args,
        host=args.host,
        port=port,
        public_url=args.public_url,
        quota_per_minute=args.quota_per_minute,
        retention_days=args.retention_days,
        retention_max_events=args.retention_max_events,
        performance_retention_days=args.performance_retention_days,
        sample_retention_days=args.sample_retention_days,
        profile_retention_days=args.profile_retention_days,
        sqlite_synchronous=args.sqlite_synchronous,
        run_digester=not args.no_digest,
        digest_process=True,
        digest_niceness=args.digest_niceness,
        limits=Limits(**{field: getattr(args, f"limit_{field}") for _, field, _, _ in _LIMIT_FLAGS}),
        alerts=alert_settings(args),
    )
    warning = exposure_warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if args.workers < 1:
        print("tripwire serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and not config.effective_database_url.startswith("postgres"):
        # SQLite has one writer at a time: more HTTP processes would only queue for its lock.
        print("tripwire serve: --workers N (N > 1) needs a PostgreSQL --database-url", file=sys.stderr)
        return 2
    store = open_store(config.effective_database_url, sqlite_synchronous=config.sqlite_synchronous)
    info = bootstrap(store, config)
    workers: list[int] = []
    if args.workers > 1:
        from .workers import fork_workers

        # The workers open their own connections: none may be shared across the fork.
        store.close()
        worker_config = dataclasses.replace(config, run_digester=False)
        workers = fork_workers(
            args.workers - 1, lambda: _run_server(create_app(worker_config), worker_config, args, sock)
        )
        store = open_store(config.effective_database_url, sqlite_synchronous=config.sqlite_synchronous)
    url = config.effective_public_url
    dsn = info.project.dsn(url)
    # A password the operator chose ($TRIPWIRE_ADMIN_PASSWORD) is never echoed: logs keep stdout.
    password = info.admin_password
    if password is not None and password == os.environ.get("TRIPWIRE_ADMIN_PASSWORD"):
        password = None
    database = config.effective_database_url
    if "@" in database:  # never print a database password
        scheme, _, rest = database.partition("://")
        database = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "url": url + "/",
                    "dsn": dsn,
                    "project": info.project.name,
                    "admin_user": info.admin_username if info.admin_password else None,
                    "admin_password": password,
                    "database": database,
                    "pid": os.getpid(),
                    "workers": workers,
                }
            ),
            flush=True,
        )
    else:
        print(f"tripwire collector on {url}/  (database: {database})")
        print(f"  dashboard: {url}/")
        print(f"  DSN of project {info.project.name!r}: {dsn}")
        if password:
            print(
                f"  admin login: {info.admin_username} / {password}"
                "  (shown once; change it with: tripwire user passwd admin)"
            )
        elif info.admin_password:
            print(f"  admin login: {info.admin_username} / the password in $TRIPWIRE_ADMIN_PASSWORD")
        if workers:
            pids = ", ".join(map(str, [os.getpid(), *workers]))
            print(f"  {args.workers} HTTP processes: {pids} (the first also runs the digest)")
        print("  Ctrl-C to stop", flush=True)
    try:
        _run_server(create_app(config, store=store), config, args, sock)
    finally:
        if workers:
            from .workers import stop_workers

            stop_workers(workers)
    return 0


def _run_server(app: Any, config: CollectorConfig, args: argparse.Namespace, sock: socket.socket) -> None:
    import uvicorn

    from .serving import uvicorn_config

    server = uvicorn.Server(
        uvicorn_config(
            app,
            config.limits,
            log_level=args.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=5,
            forwarded_allow_ips=args.forwarded_allow_ips,
        )
    )
    server.run(sockets=[sock])


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo  # on first use: it starts servers and imports the SDK

    argv: list[str] = []
    for flag, name in (
        ("--data-dir", "data_dir"),
        ("--database-url", "database_url"),
        ("--port", "port"),
        ("--host", "host"),
        ("--exit-after", "exit_after"),
        ("--interval", "interval"),
    ):
        if getattr(args, name, None) is not None:
            argv += [flag, str(getattr(args, name))]
    return int(demo.main(argv) or 0)


def cmd_project(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        url = _public_url(store)
        if args.action == "create":
            p = store.accounts.create_project(args.name)
            _out(
                args,
                {**dataclasses.asdict(p), "dsn": p.dsn(url)},
                f"created project {p.name!r} (id {p.id})\nDSN: {p.dsn(url)}",
            )
        elif args.action == "set":
            p = store.accounts.update_project(
                store.accounts.get_project(args.name).id,
                quota_per_minute=args.quota_per_minute,
                retention_days=args.retention_days,
                retention_max_events=args.retention_max_events,
                attachment_bytes_per_hour=args.attachment_bytes_per_hour,
                attachment_bytes_total=args.attachment_bytes_total,
            )
            _out(
                args,
                {**dataclasses.asdict(p), "dsn": p.dsn(url)},
                f"project {p.name!r}: quota_per_minute={p.quota_per_minute},"
                f" retention_days={p.retention_days}, retention_max_events={p.retention_max_events},"
                f" attachment_bytes_per_hour={p.attachment_bytes_per_hour},"
                f" attachment_bytes_total={p.attachment_bytes_total} (None: the server default)",
            )
        elif args.action in ("keys", "rotate-key", "revoke-key"):
            _project_keys(args, store, url)
        elif args.action in ("members", "add-member", "remove-member"):
            _project_members(args, store)
        else:
            projects = store.accounts.list_projects()
            rows = [{**dataclasses.asdict(p), "dsn": p.dsn(url)} for p in projects]
            _out(
                args,
                rows,
                "\n".join(f"{p.id:>4}  {p.name:<24} {p.dsn(url)}" for p in projects) or "no projects",
            )
    finally:
        store.close()
    return 0


def _project_keys(args: argparse.Namespace, store: Store, url: str) -> None:
    project = store.accounts.get_project(args.name)
    if args.action == "rotate-key":
        key = store.accounts.add_project_key(project.id)
        _out(
            args,
            {"project": project.name, "public_key": key.public_key, "dsn": key.dsn(url)},
            f"added a key to {project.name!r}; new DSN: {key.dsn(url)}\nThe old keys keep working"
            f" until: tripwire project revoke-key {project.name} KEY",
        )
    elif args.action == "revoke-key":
        from .state import ProjectCache  # how long a running collector caches keys

        store.accounts.revoke_project_key(project.id, args.key)
        _out(
            args,
            {"project": project.name, "revoked": args.key},
            f"revoked {args.key} of {project.name!r}; running collectors refuse it within"
            f" {ProjectCache.max_age:g} s",
        )
    else:
        keys = store.accounts.list_project_keys(project.id)
        _out(
            args,
            [{**dataclasses.asdict(k), "dsn": k.dsn(url)} for k in keys],
            "\n".join(f"{k.public_key}  {_when(k.created_at)}  {k.dsn(url)}" for k in keys),
        )


def _project_members(args: argparse.Namespace, store: Store) -> None:
    project = store.accounts.get_project(args.name)
    if args.action == "members":
        members = store.accounts.list_project_members(project.id)
        _out(
            args,
            [{"username": m.username, "is_admin": m.is_admin} for m in members],
            "\n".join(m.username for m in members) or "no members (only admins see this project)",
        )
        return
    user = store.accounts.get_user(args.username)
    if args.action == "add-member":
        store.accounts.add_project_member(project.id, user.id)
        what = f"{user.username} is a member of {project.name!r}"
    else:
        store.accounts.remove_project_member(project.id, user.id)
        what = f"{user.username} is no longer a member of {project.name!r}"
    member = args.action == "add-member"
    _out(args, {"project": project.name, "username": user.username, "member": member}, what)


def _token_row(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.username,
        "name": token.name,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
    }


def cmd_token(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        if args.action == "list":
            user_id = store.accounts.get_user(args.user).id if args.user else None
            tokens = store.accounts.list_api_tokens(user_id)
            lines = [
                f"{t.id:>5}  {t.username:<16} {t.name or '-':<20} created {_when(t.created_at)}"
                f"  expires {_when(t.expires_at) if t.expires_at else 'never'}"
                for t in tokens
            ]
            _out(args, [_token_row(t) for t in tokens], "\n".join(lines) or "no API tokens")
        elif args.action == "revoke":
            store.accounts.revoke_api_token(args.id)
            _out(args, {"revoked": args.id}, f"revoked API token {args.id}")
        else:
            user = store.accounts.get_user(args.user)
            if args.expires_in is not None and not 1 <= args.expires_in <= 3650:
                raise ValueError("--expires-in must be from 1 to 3650 days")
            expires_at = time.time() + args.expires_in * 86400 if args.expires_in else None
            listed, token = store.accounts.issue_api_token(user.id, args.name, expires_at=expires_at)
            _out(
                args,
                {**_token_row(listed), "token": token},
                f"{token}\n(API token {listed.id} for {user.username}; shown once;"
                " send it as 'Authorization: Bearer <token>')",
            )
    finally:
        store.close()
    return 0


def cmd_issues(args: argparse.Namespace) -> int:
    from .search import parse_query

    store = _open(args)
    try:
        projects = store.accounts.list_projects()
        if args.project is not None:
            project = store.accounts.get_project(args.project)
        elif projects:
            project = projects[0]
        else:
            raise NotFound("no projects yet")
        query = parse_query(args.query, IssueQuery(limit=max(1, args.limit)))
        issues = store.issues.list_issues(project.id, query)
        lines = [
            f"{i.id:>6}  {i.status:<10} {i.event_count:>7}  {_when(i.last_seen)}  {i.title}" for i in issues
        ]
        header = f"{'id':>6}  {'status':<10} {'events':>7}  {'last seen (UTC)':<19}  title"
        _out(
            args,
            [dataclasses.asdict(i) for i in issues],
            "\n".join([header, *lines]) if lines else "no issues",
        )
    finally:
        store.close()
    return 0


def cmd_event(args: argparse.Namespace) -> int:
    if args.action == "list":
        return cmd_event_list(args)
    store = _open(args)
    try:
        event = store.issues.get_event(args.event_id)
        if getattr(args, "json", False):
            print(json.dumps(dataclasses.asdict(event), indent=2, default=str))
        else:
            print(
                f"event {event.event_id}  issue {event.issue_id}  {event.level}  {_when(event.timestamp)} UTC"
            )
            print(event.title)
            print(json.dumps(event.data, indent=2, default=str))
    finally:
        store.close()
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        if args.action == "list":
            users = store.accounts.list_users()
            _out(
                args,
                [{"username": u.username, "is_admin": u.is_admin, "created_at": u.created_at} for u in users],
                "\n".join(u.username + (" (admin)" if u.is_admin else "") for u in users),
            )
            return 0
        password, generated = _password(args)
        if args.action == "create":
            user = store.accounts.create_user(args.username, password, is_admin=args.admin)
            what = f"created user {user.username}" + (" (admin)" if user.is_admin else "")
        else:
            store.accounts.set_password(args.username, password)
            what = f"changed the password of {args.username} (their sessions and API tokens are revoked)"
        shown = password if generated else None
        text = what + (f"\npassword: {password}  (shown once)" if generated else "")
        _out(args, {"username": args.username, "password": shown}, text)
    finally:
        store.close()
    return 0


def send_test(dsn: str, message: str) -> tuple[int, str, str]:
    """Send one test error event to ``dsn``; return (HTTP status, event id, response body).

    The DSN is parsed and the envelope encoded by the tripwire SDK (the same code its Sentry
    reporter uses); the request is sent here, once, so that the answer can be shown.
    """
    parsed = Dsn.parse(dsn, option="--dsn")
    event_id = uuid.uuid4().hex
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        frames = [
            {
                "filename": f.filename,
                "function": f.name,
                "lineno": f.lineno,
                "module": __name__,
                "in_app": True,
                "context_line": f.line,
            }
            for f in traceback.extract_tb(exc.__traceback__)
        ]
    event = {
        "event_id": event_id,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "logger": "tripwire.send-test",
        "server_name": socket.gethostname(),
        "tags": {"source": "send-test"},
        "exception": {
            "values": [{"type": "RuntimeError", "value": message, "stacktrace": {"frames": frames}}]
        },
        "sdk": {"name": "tripwire.send-test", "version": "1"},
    }
    header = {
        "event_id": event_id,
        "dsn": str(parsed),
        "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    items = envelope_items([({"type": "event"}, json.dumps(event).encode())])
    request = urllib.request.Request(
        parsed.envelope_url,
        data=json.dumps(header).encode() + b"\n" + items,
        method="POST",
        headers={
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": "Sentry sentry_version=7, sentry_client=tripwire-send-test/1,"
            f" sentry_key={parsed.public_key}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, event_id, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, event_id, err.read().decode(errors="replace")


def cmd_send_test(args: argparse.Namespace) -> int:
    status, event_id, body = send_test(args.dsn, args.message)
    ok = status == 200
    _out(
        args,
        {"status": status, "event_id": event_id, "response": body},
        f"{'sent' if ok else 'FAILED'}: HTTP {status}, event {event_id}" + ("" if ok else f"\n{body}"),
    )
    return 0 if ok else 1


_COMMANDS = {
    "serve": cmd_serve,
    "demo": cmd_demo,
    "project": cmd_project,
    "token": cmd_token,
    "issues": cmd_issues,
    "event": cmd_event,
    "user": cmd_user,
    "send-test": cmd_send_test,
    "alert": cmd_alert,
    "monitor": cmd_monitor,
    "feedback": cmd_feedback,
    "logs": cmd_logs,
    "performance": cmd_performance,
    "trace": cmd_trace,
    "profile": cmd_profile,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tripwire`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (StoreError, ValueError, OSError) as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"tripwire: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
