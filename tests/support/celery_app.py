"""A Celery app for the tests: tasks that fail the way application code fails.

The test process uses :func:`make_app` to send tasks and read results; the worker process loads
``tests.support.celery_worker:app``, which initialises tripwire first, as an app's own module would.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

import tripwire

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

    @app.task(name="charge", shared=False)
    def charge(order: int) -> None:
        # Celery logs the failure (celery.app.trace, with exc_info) in the pool process, then sends
        # the exception to the parent process through a pipe: pickled.
        if order % 2:
            raise PaymentDeclined(order, "card expired")
        raise ValueError(f"order {order} is empty")

    @app.task(name="refund", shared=False)
    def refund(order: int, *, note: str = "", password: str = "", tag: str | None = None) -> None:
        # What the task sets on its scope must reach its own event, and no other task's.
        if tag is not None:
            tripwire.set_tag("refund.reason", tag)
            tripwire.set_user({"id": f"customer-{order}"})
        raise LookupError(f"no payment for order {order}")

    @app.task(name="ship", shared=False)
    def ship(order: int) -> str:
        return f"shipped {order}"

    @app.task(
        name="flaky",
        shared=False,
        bind=True,
        autoretry_for=(ConnectionError,),
        max_retries=2,
        default_retry_delay=0,
    )
    def flaky(self: Any, order: int) -> None:
        raise ConnectionError(f"warehouse unreachable (attempt {self.request.retries + 1})")

    @app.task(name="decline", shared=False, throws=(PaymentDeclined,))
    def decline(order: int) -> None:
        # An outcome the task declares expected: Celery logs it at INFO, tripwire does not report it.
        raise PaymentDeclined(order, "insufficient funds")

    @app.task(name="nightly-report", shared=False)
    def nightly_report(fail: bool = False) -> None:
        time.sleep(0.05)
        if fail:
            raise RuntimeError("report failed")

    return app
