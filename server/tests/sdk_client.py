"""Run by the tests in a subprocess: report to a collector with the official sentry-sdk.

Usage: python sdk_client.py DSN. Prints one JSON line with the event ids it sent.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk


def checkout(order_id: int) -> None:
    raise KeyError(f"order {order_id} has no customer")


def main() -> None:
    dsn = sys.argv[1]
    ids: dict[str, str | None] = {}
    sentry_sdk.init(
        dsn=dsn,
        release="shop@1.4.0",
        environment="staging",
        auto_session_tracking=False,
        default_integrations=False,
        send_client_reports=False,
    )
    sentry_sdk.set_user({"id": "user-42", "email": "ada@example.com"})
    sentry_sdk.set_tag("region", "eu-west")
    sentry_sdk.add_breadcrumb(category="cart", message="added item sku-7", level="info")
    sentry_sdk.start_session()
    try:
        checkout(1234)
    except KeyError:
        ids["exception"] = sentry_sdk.capture_exception()
    ids["message"] = sentry_sdk.capture_message("payment provider slow: 2500 ms", level="warning")
    sentry_sdk.end_session()
    # A second session that crashes.
    sentry_sdk.start_session()
    sentry_sdk.get_isolation_scope()._session.update(status="crashed")  # type: ignore[union-attr]
    sentry_sdk.end_session()
    # A server-style request session: sent as a "sessions" aggregate.
    sentry_sdk.start_session(session_mode="request")
    sentry_sdk.end_session()
    sentry_sdk.flush(timeout=10)
    print(json.dumps(ids), flush=True)


if __name__ == "__main__":
    main()
