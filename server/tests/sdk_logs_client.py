"""Run by the tests in a subprocess: logs and an error with the official sentry-sdk (``enable_logs``).

Usage: python sdk_logs_client.py DSN. Sends 5 info logs and a warning with attributes, then an error
in the same trace; prints one JSON line with the error's id.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk
from sentry_sdk import logger as sentry_logger


def main() -> None:
    sentry_sdk.init(dsn=sys.argv[1], enable_logs=True, default_integrations=False, release="shop@4.0.0")
    for n in range(5):
        sentry_logger.info("order {order} paid", order=n, attributes={"warehouse": "north"})
    sentry_logger.warning("stock low for {sku}", sku="sku-9", attributes={"warehouse": "south"})
    error_id = sentry_sdk.capture_message("payment provider down", level="error")
    sentry_sdk.flush(timeout=10)
    print(json.dumps({"error": error_id}))


if __name__ == "__main__":
    main()
