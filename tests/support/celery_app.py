"""A Celery app for the tests: tasks that fail the way application code fails.

The test process uses :func:`make_app` to send tasks and read results; the worker process loads
``tests.support.celery_worker:app``, which initialises tripwire first, as an app's own module would.
"""

from __future__ import annotations

from celery import Celery

BROKER = "redis://127.0.0.1:6379/0"


class PaymentDeclined(Exception):
    """An application error with attributes of its own."""

    def __init__(self, order: int, reason: str) -> None:
        super().__init__(order, reason)
        self.order = order
        self.reason = reason


def make_app(queue: str) -> Celery:
    """An app whose tasks go to ``queue`` only (one queue per test: parallel runs never mix)."""
    app = Celery("tripwire_tests", broker=BROKER, backend=BROKER)
    app.conf.update(
        task_default_queue=queue,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=600,
    )

    @app.task(name="charge")
    def charge(order: int) -> None:
        # Celery logs the failure (celery.app.trace, with exc_info) in the pool process, then sends
        # the exception to the parent process through a pipe: pickled.
        if order % 2:
            raise PaymentDeclined(order, "card expired")
        raise ValueError(f"order {order} is empty")

    return app
