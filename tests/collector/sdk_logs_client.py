"""Run by the tests in a subprocess: send logs with the official sentry-sdk (``enable_logs``).

Usage: python sdk_logs_client.py DSN. Sends 5 log records, flushes, sends 3 more and an error,
flushes again; prints one JSON line: the categories the SDK holds back and the error's id.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk
from sentry_sdk import logger as sentry_logger


def main() -> None:
    sentry_sdk.init(dsn=sys.argv[1], enable_logs=True, default_integrations=False)
    for n in range(5):
        sentry_logger.info("order {order} paid", order=n)
    sentry_sdk.flush(timeout=10)
    client = sentry_sdk.get_client()
    transport = client.transport
    held_back = sorted(str(c) for c in transport._disabled_until) if transport else []  # type: ignore[attr-defined]
    for n in range(3):
        sentry_logger.warning("order {order} refunded", order=n)
    error_id = sentry_sdk.capture_message("after the logs")
    # flush() also sends the client report that counts the held-back logs.
    sentry_sdk.flush(timeout=10)
    print(json.dumps({"held_back": held_back, "error": error_id}))


if __name__ == "__main__":
    main()
