"""The module a test's Celery worker loads (``-A tests.support.celery_worker``).

tripwire is initialised at import, in the worker's main process, before the pool forks its children.
"""

from __future__ import annotations

import json
import os

import tripwire
from tests.support.celery_app import make_app
from tripwire.integrations.celery import CeleryIntegration

# TRIPWIRE_TEST_CELERY_OPTIONS: CeleryIntegration options as JSON, for the tests that set some.
options = json.loads(os.environ.get("TRIPWIRE_TEST_CELERY_OPTIONS") or "{}")
tripwire.init(
    os.environ["TRIPWIRE_TEST_DSN"],
    send_client_reports=bool(os.environ.get("TRIPWIRE_TEST_CLIENT_REPORTS")),
    release=os.environ.get("TRIPWIRE_TEST_RELEASE") or None,
    integrations=[CeleryIntegration(**options)] if options else [],
    # TRIPWIRE_TEST_TRACES: traces_sample_rate, for the tracing tests.
    traces_sample_rate=float(os.environ.get("TRIPWIRE_TEST_TRACES") or "nan")
    if os.environ.get("TRIPWIRE_TEST_TRACES")
    else None,
)
app = make_app(os.environ["TRIPWIRE_TEST_QUEUE"])
