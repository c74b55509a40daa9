"""The collector as one Starlette application, declared as data.

    app = create_app(CollectorConfig(data_dir=Path("data")))

Routes: Sentry ingest (``/api/{id}/envelope/``, ``/api/{id}/store/``), the JSON API (``/api/0/...``)
and the HTML dashboard from :mod:`tripwire_server.web` (which owns ``/``), around one
:class:`~.state.CollectorState`. The lifespan opens and migrates the store, creates the first
project and admin on a fresh database (:func:`~.state.bootstrap`), and runs the intake writer and
the background digester.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from . import (
    api,
    api_alerts,  # noqa: F401 - adds the alert and monitor endpoints to api.ENDPOINTS
    api_feedback,  # noqa: F401 - adds the feedback endpoints to api.ENDPOINTS
    api_logs,  # noqa: F401 - adds the logs endpoint to api.ENDPOINTS
    api_performance,  # noqa: F401 - adds the performance and trace endpoints to api.ENDPOINTS
    api_profiling,  # noqa: F401 - adds the profiling endpoints to api.ENDPOINTS
    web,
)
from .config import CollectorConfig
from .ingest import bugsnag, otlp, sentry
from .state import Bootstrap, CollectorState, bootstrap
from .store import Store, open_store

__all__ = ["Bootstrap", "CollectorState", "bootstrap", "create_app"]


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
            *sentry.routes(),
            *bugsnag.routes(),
            *otlp.routes(),
            *api.routes(),
            *web.routes(state),
        ],
        lifespan=lifespan,
    )
    app.state.collector = state
    return app
