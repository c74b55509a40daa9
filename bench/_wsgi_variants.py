"""The Flask app of the WSGI benchmark, set up with each SDK (one variant per process).

Variants:
    bare      Flask, no SDK
    tripwire  tripwire.init(dsn=<sink>) + ``app.wsgi_app = tripwire.wsgi.TripwireMiddleware(app.wsgi_app)``
    sentry    sentry_sdk.init(dsn=<sink>) with its auto-enabled Flask integration, tracing off
    tripwire-nosessions  the same with auto_session_tracking=False (what-if: under callgrind a run
              lasts minutes, so the once-a-minute session flush lands in the per-request figure)
    bugsnag   bugsnag.configure(endpoints=<sink>) + bugsnag.wsgi.middleware.BugsnagMiddleware

Every SDK gets the same release, reports to the loopback sink at ``sink_url`` and is otherwise left at
its defaults.
"""

from __future__ import annotations

from typing import Any

VARIANTS = ("bare", "tripwire", "sentry", "bugsnag")
RELEASE = "bench@1.0.0"


def flask_app() -> Any:
    from flask import Flask

    app = Flask("wsgi_bench")

    @app.route("/ok")
    def ok() -> str:
        return "ok"

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("boom")

    return app


def build(variant: str, sink_url: str) -> Any:
    """The WSGI app for ``variant``, with its SDK initialised to report to ``sink_url``."""
    port = sink_url.rsplit(":", 1)[1]
    dsn = f"http://publickey@127.0.0.1:{port}/1"
    if variant == "sentry":
        import sentry_sdk

        sentry_sdk.init(dsn=dsn, release=RELEASE)  # before the app: the Flask integration patches Flask
    app = flask_app()
    if variant == "bare" or variant == "sentry":
        return app
    if variant.startswith("tripwire"):
        import tripwire
        from tripwire.wsgi import TripwireMiddleware

        extra: dict[str, Any] = {}
        if variant == "tripwire-nosessions":
            extra["auto_session_tracking"] = False
        tripwire.init(dsn, release=RELEASE, **extra)
        app.wsgi_app = TripwireMiddleware(app.wsgi_app)  # type: ignore[method-assign]
        return app
    if variant == "bugsnag":
        import bugsnag
        from bugsnag.flask import handle_exceptions
        from bugsnag.wsgi.middleware import BugsnagMiddleware

        bugsnag.configure(
            api_key="0" * 32,
            endpoint=f"{sink_url}/notify",
            session_endpoint=f"{sink_url}/sessions",
            app_version=RELEASE,
        )
        handle_exceptions(app)  # bugsnag's Flask hook (Flask handles errors before WSGI sees them)
        app.wsgi_app = BugsnagMiddleware(app.wsgi_app)  # type: ignore[method-assign]
        return app
    raise ValueError(variant)
