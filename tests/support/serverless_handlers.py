"""Function handlers as an application writes them, for tests/support/serverless_runtime.py.

tripwire is initialised at import (the DSN from ``TRIPWIRE_TEST_DSN``), as in a real function's module.
"""

from __future__ import annotations

import os
import time
from typing import Any

import tripwire

tripwire.init(os.environ["TRIPWIRE_TEST_DSN"], send_client_reports=False, release=None)

#: The exception the failing handler raised, so the runtime can tell it got the very same object.
LAST_ERROR: BaseException | None = None


class CardDeclined(Exception):
    pass


@tripwire.serverless
def charge(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global LAST_ERROR
    tripwire.set_tag("customer.plan", event["plan"])
    tripwire.set_user({"id": event["user"]})
    if event.get("fail"):
        LAST_ERROR = CardDeclined(f"card of order {event['order']} declined")
        raise LAST_ERROR
    return {"statusCode": 200, "body": f"charged {event['order']}"}


@tripwire.serverless()
def note(event: dict[str, Any], context: Any) -> dict[str, Any]:
    tripwire.capture_message(f"refund requested for order {event['order']}", "warning")
    return {"statusCode": 202}


@tripwire.serverless(warning_margin=1.0)
def slow(event: dict[str, Any], context: Any) -> None:
    tripwire.set_tag("step", "export")
    time.sleep(30)  # longer than the invocation may run: the runtime kills it
