"""Job functions for the RQ tests (imported by the worker process by their dotted name)."""

from __future__ import annotations

import tripwire


def refund(order: int, *, note: str = "", password: str = "", tag: str | None = None) -> None:
    # What the job sets on its scope must reach its own event, and no other job's.
    if tag is not None:
        tripwire.set_tag("refund.reason", tag)
        tripwire.set_user({"id": f"customer-{order}"})
    raise LookupError(f"no payment for order {order}")


def ship(order: int) -> str:
    return f"shipped {order}"


def flaky(order: int) -> None:
    raise ConnectionError(f"warehouse unreachable for order {order}")
