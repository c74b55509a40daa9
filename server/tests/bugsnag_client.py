"""Run by the tests in a subprocess: report to the collector with the official ``bugsnag`` package.

Usage: python bugsnag_client.py URL API_KEY. Starts three sessions, reports an unhandled error in
the last one and a handled warning in another, then sends the session counts; prints one JSON line
with the notify payload it sent (for the tests that post it elsewhere).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import bugsnag
from bugsnag.delivery import UrllibDelivery

sent: list[Any] = []


class RecordingDelivery(UrllibDelivery):
    """The package's own HTTP delivery, keeping a copy of each notify payload."""

    def deliver(self, config: Any, payload: Any, options: Any = None) -> None:
        data = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
        if "events" in data:  # sessions go through here too
            sent.append(data)
        super().deliver(config, payload, options)


def charge(order_id: int) -> None:
    raise KeyError(f"order {order_id} has no card")


def main() -> None:
    url, key = sys.argv[1], sys.argv[2]
    client = bugsnag.Client(
        api_key=key,
        endpoint=url,
        session_endpoint=f"{url}/sessions",
        asynchronous=False,
        app_version="shop@2.0.0",
        release_stage="staging",
        auto_capture_sessions=False,
        install_sys_hook=False,
        delivery=RecordingDelivery(),  # type: ignore[no-untyped-call]  # bugsnag's __init__ is unannotated
    )
    client.session_tracker.start_session()
    client.notify(RuntimeError("card declined for order 7"), severity="warning", user={"id": "u-7"})
    client.session_tracker.start_session()
    client.session_tracker.start_session()
    try:
        charge(1234)
    except KeyError as exc:
        client.notify(exc, unhandled=True, severity="error", user={"id": "u-42", "email": "ada@example.com"})
    client.session_tracker.send_sessions(asynchronous=False)
    print(json.dumps(sent[-1]))


if __name__ == "__main__":
    main()
