"""Run by the tests in a subprocess: report to a collector with the tripwire SDK itself.

Usage: python tripwire_client.py DSN. Prints one JSON line with the event ids it sent.
"""

from __future__ import annotations

import json
import sys

import tripwire


def checkout(order_id: int) -> None:
    raise KeyError(f"order {order_id} has no customer")


def main() -> None:
    tripwire.init(sys.argv[1], release="shop@2.0.0", environment="staging")
    ids: dict[str, str | None] = {}
    tripwire.set_user({"id": "user-7", "email": "grace@example.com"})
    tripwire.set_tag("region", "us-east")
    # BugSnag-style metadata: a named section of key/values.
    tripwire.set_context("account", {"plan": "pro", "seats": 12})
    tripwire.add_breadcrumb(category="cart", message="added item sku-9", level="info")
    tripwire.start_session()
    try:
        checkout(77)
    except KeyError as exc:
        ids["exception"] = tripwire.capture_exception(exc)
    ids["message"] = tripwire.capture_message("inventory low: 3 left", level="warning")
    tripwire.end_session()
    tripwire.start_session()
    tripwire.end_session("crashed")
    tripwire.flush(10)
    tripwire.close(10)
    print(json.dumps(ids), flush=True)


if __name__ == "__main__":
    main()
