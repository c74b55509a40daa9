"""Run by the tests in a subprocess: two different errors of one type raised in one function at
different lines, whose source the SDK cannot read (no context lines), sent by sentry-sdk.

Usage: python sdk_lines_client.py DSN. Prints one JSON line with the two event ids.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import sentry_sdk

# Deployed without its source (a zipapp, a .pyc-only install): the SDK sends no context_line.
SOURCE = """
def checkout(cart):
    if not cart:
        raise ValueError("empty cart")
    total = sum(cart)
    if total > 100:
        raise ValueError("over the limit")
    return total
"""


def main() -> None:
    sentry_sdk.init(
        dsn=sys.argv[1], default_integrations=False, send_client_reports=False, in_app_include=["shop"]
    )
    namespace: dict[str, Any] = {"__name__": "shop.checkout"}
    exec(compile(SOURCE, "/srv/shop/checkout.py", "exec"), namespace)
    ids = []
    for cart in ([], [60, 70]):
        try:
            namespace["checkout"](cart)
        except ValueError:
            ids.append(sentry_sdk.capture_exception())
    sentry_sdk.flush(10)
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
