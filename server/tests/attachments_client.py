"""Run by the tests in a subprocess: an error with attachments, sent by the official sentry-sdk.

Usage: python attachments_client.py DSN. Prints one JSON line with the event id.
"""

from __future__ import annotations

import json
import sys

import sentry_sdk


def main() -> None:
    sentry_sdk.init(dsn=sys.argv[1], default_integrations=False, send_client_reports=False)
    scope = sentry_sdk.get_current_scope()
    scope.add_attachment(bytes=b"12:00 start\n12:01 <script>alert(1)</script> failed\n", filename="app.log")
    scope.add_attachment(
        bytes=b'{"cart": {"items": 3, "total": 42}}', filename="state.json", content_type="application/json"
    )
    scope.add_attachment(
        bytes=b"<html><script>alert(document.cookie)</script></html>",
        filename="page.html",
        content_type="text/html",
    )
    scope.add_attachment(
        bytes=bytes(range(256)), filename="core.bin", content_type="application/octet-stream"
    )
    event_id = sentry_sdk.capture_message("upload failed", level="error")
    sentry_sdk.flush(10)
    print(json.dumps({"event": event_id}))


if __name__ == "__main__":
    main()
