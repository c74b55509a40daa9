"""Run by the tests in a subprocess: the official sentry-sdk's transport meets a refused item type.

Usage: python sdk_refused_client.py DSN. Sends a metrics item (a type the collector does not
store) through the SDK's own transport, then another, then an error; prints one JSON line with the
categories the SDK then holds back and the error's id.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef


def _metrics() -> Envelope:
    envelope = Envelope()
    envelope.add_item(Item(payload=PayloadRef(json={"items": []}), type="trace_metric"))
    return envelope


def main() -> None:
    sentry_sdk.init(dsn=sys.argv[1], default_integrations=False)
    transport = sentry_sdk.get_client().transport
    assert transport is not None
    transport.capture_envelope(_metrics())
    sentry_sdk.flush(timeout=10)
    held_back = sorted(str(c) for c in transport._disabled_until)  # type: ignore[attr-defined]
    for _ in range(3):
        transport.capture_envelope(_metrics())  # dropped by the SDK itself now
    error_id = sentry_sdk.capture_message("after the metrics", level="error")
    # flush() also sends the client report that counts the held-back items.
    sentry_sdk.flush(timeout=10)
    print(json.dumps({"held_back": held_back, "error": error_id}))


if __name__ == "__main__":
    main()
