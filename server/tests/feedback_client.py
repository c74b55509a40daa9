"""Run by the tests in a subprocess: send user feedback with the tripwire SDK and sentry-sdk.

Usage: python feedback_client.py DSN. With tripwire: an error, then feedback about it
(``tripwire.capture_feedback``) and feedback about nothing; with sentry-sdk's own transport: an
error and a legacy ``user_report`` about it. Prints one JSON line with the ids.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef

import tripwire


def checkout() -> None:
    raise RuntimeError("payment form froze")


def main() -> None:
    dsn = sys.argv[1]
    ids: dict[str, str | None] = {}
    tripwire.init(dsn, release="shop@3.0.0")
    try:
        checkout()
    except RuntimeError as exc:
        ids["error"] = tripwire.capture_exception(exc)
    ids["feedback"] = tripwire.capture_feedback(
        "I clicked <b>Pay</b> & nothing happened",
        email="ada@example.com",
        name="Ada",
        associated_event_id=ids["error"],
    )
    ids["general"] = tripwire.capture_feedback("Love the new design")
    tripwire.flush(10)
    tripwire.close()

    sentry_sdk.init(dsn=dsn, default_integrations=False, send_client_reports=False)
    ids["legacy_error"] = sentry_sdk.capture_message("search returned nothing", level="error")
    report = {
        "event_id": ids["legacy_error"],
        "name": "Grace",
        "email": "grace@example.com",
        "comments": "Search is empty for 'shoes'",
    }
    envelope = Envelope(headers={"event_id": ids["legacy_error"]})
    envelope.add_item(Item(payload=PayloadRef(json=report), type="user_report"))
    transport = sentry_sdk.get_client().transport
    assert transport is not None
    transport.capture_envelope(envelope)
    sentry_sdk.flush(10)
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
