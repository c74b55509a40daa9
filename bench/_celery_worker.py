"""The Celery app of bench/celery_bench.py, loaded by its worker (``-A _celery_worker``).

``BENCH_VARIANT`` picks what the worker process initialises before the pool starts: nothing,
tripwire (default integrations, Celery's included) or sentry-sdk with its CeleryIntegration.
Both SDKs send to ``BENCH_DSN`` (the bench's sink on 127.0.0.1).
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

BROKER = "redis://127.0.0.1:6379/0"
variant = os.environ.get("BENCH_VARIANT", "bare")
if variant.startswith("tripwire"):
    import tripwire

    # "tripwire, Celery off": what the rest of the SDK costs a worker, to tell the two apart.
    disabled = ["celery"] if variant == "tripwire, Celery off" else []
    tripwire.init(
        os.environ["BENCH_DSN"], send_client_reports=False, release="bench@1", disabled_integrations=disabled
    )
elif variant == "sentry-sdk":
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    sentry_sdk.init(os.environ["BENCH_DSN"], integrations=[CeleryIntegration()], release="bench@1")

app = Celery("tripwire_bench", broker=BROKER)
app.conf.update(
    task_default_queue=os.environ["BENCH_QUEUE"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_ignore_result=True,
    # Fetch many messages per round trip: what is measured is the per-task cost, not Redis polling.
    worker_prefetch_multiplier=256,
)
_stamps = redis.Redis.from_url(BROKER)


@app.task(name="order")
def order(n: int, customer: str) -> int:
    return n * 2


@app.task(name="stamp")
def stamp(key: str) -> None:
    # First and last task of a run: the clocks of the process that runs the tasks bracket the tasks
    # in between. CPU time is what the comparison uses: the machine is shared, wall time is noisy.
    _stamps.set(key, f"{time.time()!r} {time.process_time()!r}")
