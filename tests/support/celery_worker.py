"""The module a test's Celery worker loads (``-A tests.support.celery_worker``).

tripwire is initialised at import, in the worker's main process, before the pool forks its children.
"""

from __future__ import annotations

import os

import tripwire
from tests.support.celery_app import make_app

tripwire.init(os.environ["TRIPWIRE_TEST_DSN"], send_client_reports=False, release=None)
app = make_app(os.environ["TRIPWIRE_TEST_QUEUE"])
