"""A real RQ worker for the tests: ``python -m tests.support.rq_worker QUEUE WORKER_CLASS``.

tripwire is initialised first (DSN from ``TRIPWIRE_TEST_DSN``, RqIntegration options as JSON from
``TRIPWIRE_TEST_RQ_OPTIONS``), as an app's worker module would; then the worker runs in burst mode:
it performs every job queued and exits.
"""

from __future__ import annotations

import json
import os
import sys

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.worker import BaseWorker

import tripwire
from tripwire.integrations.rq import RqIntegration

BROKER = "redis://127.0.0.1:6379/0"


class _NoCommands:
    """No pubsub command channel: the tests send workers no commands, and with rq 3.0 and redis-py 8.2
    a burst worker that ends right after subscribing can hang for good in its teardown (redis-py's
    ``PubSubWorkerThread.stop()`` joins a thread blocked in ``get_message``; seen without tripwire too)."""

    def subscribe(self) -> None:
        pass


class CommandlessWorker(_NoCommands, Worker):
    pass


class CommandlessSimpleWorker(_NoCommands, SimpleWorker):
    pass


def main() -> None:
    queue_name, worker_class = sys.argv[1], sys.argv[2]
    options = json.loads(os.environ.get("TRIPWIRE_TEST_RQ_OPTIONS") or "{}")
    tripwire.init(
        os.environ["TRIPWIRE_TEST_DSN"],
        send_client_reports=False,
        release=None,
        integrations=[RqIntegration(**options)] if options else [],
        # TRIPWIRE_TEST_TRACES: traces_sample_rate, for the tracing tests.
        traces_sample_rate=float(os.environ.get("TRIPWIRE_TEST_TRACES") or "nan")
        if os.environ.get("TRIPWIRE_TEST_TRACES")
        else None,
    )
    connection = Redis.from_url(BROKER)
    classes: dict[str, type[BaseWorker]] = {
        "Worker": CommandlessWorker,
        "SimpleWorker": CommandlessSimpleWorker,
    }
    cls = classes[worker_class]
    worker = cls([Queue(queue_name, connection=connection)], connection=connection)
    worker.work(burst=True, logging_level="WARNING")


if __name__ == "__main__":
    main()
