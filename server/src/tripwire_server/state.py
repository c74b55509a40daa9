"""What the collector's routes share: :class:`CollectorState` (reachable as
``request.app.state.collector``), the DSN-key cache and the per-minute quotas.

:mod:`.app` builds one of these and composes the routes around it; the ingest endpoints, the JSON
API and the dashboard read it. The first start's setup (:func:`bootstrap`) lives here too, since
the lifespan and the CLI both run it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import multiprocessing
import os
import secrets
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import anyio.to_thread

from .alerts.outbox import OutboxWorker
from .attachment_quota import AttachmentQuota
from .bodies import decode_stored
from .budget import InFlightBudget
from .config import CollectorConfig
from .digest.worker import Digester, digest_process_main
from .monitors import MonitorClock
from .queue_writer import IntakeWriter
from .refusal_limit import RefusalLimiter
from .refusals import Refusals
from .store import Project, Store, StoreError
from .store.accounts import Accounts


@dataclasses.dataclass
class Bootstrap:
    """What the first start created (the password is only known right after creation)."""

    project: Project
    admin_username: str
    admin_password: str | None


def bootstrap(store: Store, config: CollectorConfig) -> Bootstrap:
    """Migrate, then create project ``default`` and user ``admin`` if there are no projects/users.

    The admin password comes from ``$TRIPWIRE_ADMIN_PASSWORD`` or is generated (and returned, so
    the caller can print it once). Idempotent; safe with several processes starting at once.
    """
    store.migrate()
    store.accounts.set_setting("public_url", config.effective_public_url)
    projects = store.accounts.list_projects()
    if not projects:
        try:
            store.accounts.create_project("default")
        except StoreError:
            pass  # another process created it first
        projects = store.accounts.list_projects()
    password = None
    if not store.accounts.list_users():
        candidate = os.environ.get("TRIPWIRE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        try:
            store.accounts.create_user("admin", candidate, is_admin=True)
            password = candidate
        except StoreError:
            pass
    return Bootstrap(projects[0], "admin", password)


class ProjectCache:
    """DSN public key -> project, for every key that is not revoked (a project may have several
    while a key is being rotated).

    Reloaded from the store on a miss (at most once a second) and whenever it is older than
    ``max_age``, so projects and keys created by the CLI or another process are found without a
    restart, and a key revoked elsewhere stops ingesting within ``max_age`` seconds. A revocation
    through this process's API or dashboard calls :meth:`invalidate`: refused at once.
    """

    #: Seconds a revoked key may still be accepted by a collector that did not revoke it.
    max_age = 5.0

    def __init__(self, accounts: Accounts, clock: Callable[[], float] = time.monotonic) -> None:
        self.accounts = accounts
        self.clock = clock
        self._by_key: dict[str, Project] = {}
        self._loaded = -math.inf
        self._lock = threading.Lock()
        self._reloading: asyncio.Task[None] | None = None

    def _reload(self) -> None:
        projects = {p.id: p for p in self.accounts.list_projects()}
        keys = self.accounts.list_project_keys()
        with self._lock:
            self._by_key = {k.public_key: projects[k.project_id] for k in keys if k.project_id in projects}
            self._loaded = self.clock()

    async def get(self, key: str) -> Project | None:
        """The project whose (unrevoked) DSN public key is ``key``, or None."""
        project = self._by_key.get(key)
        age = self.clock() - self._loaded
        if (project is None and age > 1.0) or age > self.max_age:
            # One reload at a time, however many requests with unknown keys arrive meanwhile
            # (a flood of made-up keys must not become a flood of queries); shielded, so that a
            # client going away does not cancel it for the others.
            if self._reloading is None or self._reloading.done():
                self._reloading = asyncio.get_running_loop().create_task(self._reload_async())
            await asyncio.shield(self._reloading)
            project = self._by_key.get(key)
        return project

    async def _reload_async(self) -> None:
        await anyio.to_thread.run_sync(self._reload)

    def invalidate(self) -> None:
        """Reload on the next lookup (a key was revoked or added by this process)."""
        self._loaded = -math.inf


class Quotas:
    """Per-project fixed one-minute windows of quota items, kept in this process."""

    def __init__(self) -> None:
        self._windows: dict[int, tuple[int, int]] = {}

    def take(self, project_id: int, limit: int, n: int, now: float) -> int | None:
        """Count ``n`` items; return None if allowed, else the seconds until the window resets."""
        if limit <= 0 or n <= 0:
            return None
        minute = int(now // 60)
        start, used = self._windows.get(project_id, (minute, 0))
        if start != minute:
            start, used = minute, 0
        if used + n > limit:
            self._windows[project_id] = (start, used)
            return max(1, math.ceil((start + 1) * 60 - now))
        self._windows[project_id] = (start, used + n)
        return None


class CollectorState:
    """Everything the routes share, reachable as ``request.app.state.collector``."""

    def __init__(self, config: CollectorConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.public_url = config.effective_public_url
        self.digester: Digester | None = None
        self.digest_process: BaseProcess | None = None
        on_commit = None
        if config.run_digester and config.digest_process:
            ctx = multiprocessing.get_context("spawn")
            self.digest_process = ctx.Process(
                target=digest_process_main,
                args=(config, os.getpid()),
                name="tripwire-digest",
                daemon=True,
            )
        elif config.run_digester:
            self.digester = Digester(store.queue, store.retention, config)
            on_commit = self.digester.wake
        self.writer = IntakeWriter(store.queue, max_batch=config.intake_batch_size, on_commit=on_commit)
        self.quotas = Quotas()
        self.attachment_quota = AttachmentQuota(
            store.queue, config, count=self.writer.count, decode=decode_stored
        )
        self.projects = ProjectCache(store.accounts)
        limits = config.limits
        self.budget = InFlightBudget(
            limits.max_bytes_in_flight,
            per_owner=limits.max_bytes_in_flight_per_project,
            wait=limits.budget_wait,
        )
        #: Refusals of this process that no project's counters hold (health endpoint, Server page).
        self.refusals = Refusals()
        #: Refusals charged per client address; an address refused too often is held off.
        self.refusal_limiter = RefusalLimiter.from_limits(limits)
        self.bootstrap: Bootstrap | None = None
        # Alerts: the outbox worker and the cron monitor clock (docs/alerts.md, docs/crons.md).
        self.outbox = OutboxWorker(store.alerts, config.alerts, lambda: self.public_url)
        self.monitor_clock = MonitorClock(
            store.monitors.monitor_tick, store.alerts.prune_alerts, interval=config.alerts.clock_interval
        )

    async def start(self) -> None:
        """Start the intake writer and the digester (thread or child process)."""
        await self.writer.start()
        if self.config.alerts.enabled:
            self.outbox.start()
            self.monitor_clock.start()
        if self.digester is not None:
            self.digester.start()
        if self.digest_process is not None:
            self.digest_process.start()

    async def stop(self) -> None:
        """Commit what is in flight, then stop the digester."""
        # Off the event loop: a send in progress may take up to its timeout to finish.
        await anyio.to_thread.run_sync(self.outbox.stop)
        await anyio.to_thread.run_sync(self.monitor_clock.stop)
        await self.writer.stop()
        if self.digester is not None:
            self.digester.stop()
        if self.digest_process is not None:
            self.digest_process.terminate()  # SIGTERM: it finishes its batch, then exits
            self.digest_process.join(15)
            if self.digest_process.is_alive():
                self.digest_process.kill()
                self.digest_process.join(5)
