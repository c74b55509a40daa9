"""Invoke a function handler the way a function runtime (AWS Lambda's) does, in its own process.

``python -m tests.support.serverless_runtime HANDLER EVENT_JSON TIMEOUT_MS``: imports the handler
(``module:function``; the module initialises tripwire at import, as an app's would), calls it with
the event and a Lambda-shaped context whose remaining time counts down from ``TIMEOUT_MS``, prints
one JSON line with the outcome, and ends the process at once with ``os._exit`` — as a runtime
freezes or ends it after the handler returns: whatever tripwire had not delivered by then is lost.
At the deadline the process is killed (exit 137), as the runtime kills a timed-out invocation.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from typing import Any


class LambdaContext:
    """The attributes and method AWS Lambda's Python runtime gives a handler."""

    def __init__(self, timeout_ms: int) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000.0
        self.aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
        self.function_name = "checkout-handler"
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:checkout-handler"
        self.memory_limit_in_mb = "128"
        self.log_group_name = "/aws/lambda/checkout-handler"
        self.log_stream_name = "2026/12/07/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _kill_at_deadline(timeout_ms: int) -> None:
    def kill() -> None:
        time.sleep(timeout_ms / 1000.0)
        print(json.dumps({"outcome": "timed out"}), flush=True)
        os._exit(137)

    threading.Thread(target=kill, daemon=True).start()


def main() -> None:
    handler_name, event_json, timeout_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    module_name, _, function_name = handler_name.partition(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    context = LambdaContext(timeout_ms)
    _kill_at_deadline(timeout_ms)
    started = time.monotonic()
    outcome: dict[str, Any]
    try:
        result = handler(json.loads(event_json), context)
    except Exception as exc:
        outcome = {
            "outcome": "error",
            "type": type(exc).__name__,
            "message": str(exc),
            "same": exc is getattr(sys.modules[module_name], "LAST_ERROR", None),
        }
    else:
        outcome = {"outcome": "ok", "result": result}
    outcome["seconds"] = time.monotonic() - started
    print(json.dumps(outcome), flush=True)
    os._exit(0)  # the runtime freezes the process: no atexit, no thread shutdown


if __name__ == "__main__":
    main()
