"""The collector as one Starlette application, declared as data.

    app = create_app(CollectorConfig(data_dir=Path("data")))

Routes: Sentry ingest (``/api/{id}/envelope/``, ``/api/{id}/store/``), the JSON API (``/api/0/...``)
and the HTML dashboard from :mod:`tripwire_server.web` (which owns ``/``). The lifespan opens
and migrates the store, creates the first project and admin on a fresh database, and runs the
intake writer and the background digester.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import multiprocessing
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from . import (
    api,
    api_alerts,  # noqa: F401 - adds the alert and monitor endpoints to api.ENDPOINTS
    api_feedback,  # noqa: F401 - adds the feedback endpoints to api.ENDPOINTS
    api_logs,  # noqa: F401 - adds the logs endpoint to api.ENDPOINTS
    api_performance,  # noqa: F401 - adds the performance and trace endpoints to api.ENDPOINTS
    api_profiling,  # noqa: F401 - adds the profiling endpoints to api.ENDPOINTS
    bugsnag_ingest,
    ingest,
    otlp_ingest,
)
from .alerts.outbox import OutboxWorker
from .attachment_quota import AttachmentQuota
from .budget import InFlightBudget
from .config import CollectorConfig
from .digest import Digester, digest_process_main
from .intake import IntakeWriter
from .monitors import MonitorClock
from .refusal_limit import RefusalLimiter
from .refusals import Refusals
from .store import Project, Store, StoreError, open_store

log = logging.getLogger("tripwire_server")


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
    store.set_setting("public_url", config.effective_public_url)
    projects = store.list_projects()
    if not projects:
        try:
            store.create_project("default")
        except StoreError:
            pass  # another process created it first
        projects = store.list_projects()
    password = None
    if not store.list_users():
        candidate = os.environ.get("TRIPWIRE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        try:
            store.create_user("admin", candidate, is_admin=True)
            password = candidate
        except StoreError:
            pass
    return Bootstrap(projects[0], "admin", password)


class CollectorState:
    """Everything the routes share, reachable as ``request.app.state.collector``."""

    def __init__(self, config: CollectorConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.public_url = config.effective_public_url
        self.digester: Digester | None = None
        self.digest_process: Any = None
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
            self.digester = Digester(store, config)
            on_commit = self.digester.wake
        self.writer = IntakeWriter(store, max_batch=config.intake_batch_size, on_commit=on_commit)
        self.quotas = ingest.Quotas()
        self.attachment_quota = AttachmentQuota(
            store, config, count=self.writer.count, decode=ingest.decode_stored
        )
        self.projects = ingest.ProjectCache(self)
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
        self.outbox = OutboxWorker(store, config.alerts, lambda: self.public_url)
        self.monitor_clock = MonitorClock(store, interval=config.alerts.clock_interval)

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


def _web_routes(state: CollectorState) -> list[BaseRoute]:
    """HTML routes from ``tripwire_server.web.routes(state)`` if that module provides them."""
    try:
        web = importlib.import_module("tripwire_server.web")
        make = getattr(web, "routes", None)
        return list(make(state)) if callable(make) else []
    except Exception:
        # Ingest and the API must keep working even if the dashboard cannot load.
        log.exception("the web dashboard could not be loaded; serving ingest and API only")
        return []


def create_app(config: CollectorConfig | None = None, *, store: Store | None = None) -> Starlette:
    """The collector application. ``store`` defaults to the database named by ``config``."""
    config = config or CollectorConfig()
    store = store or open_store(config.effective_database_url, sqlite_synchronous=config.sqlite_synchronous)
    state = CollectorState(config, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.bootstrap = bootstrap(store, config)
        await state.start()
        try:
            yield
        finally:
            # Commit what is in flight before the digester and the store go away.
            await state.stop()
            store.close()

    app = Starlette(
        routes=[
            *ingest.routes(),
            *bugsnag_ingest.routes(),
            *otlp_ingest.routes(),
            *api.routes(),
            *_web_routes(state),
        ],
        lifespan=lifespan,
    )
    app.state.collector = state
    return app
