"""Sentry protocol payloads of performance data, built by hand for the tests."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any


def span_id() -> str:
    return secrets.token_hex(8)


def transaction(
    name: str,
    duration_ms: float,
    *,
    trace_id: str | None = None,
    parent_span_id: str | None = None,
    end: float | None = None,
    op: str = "http.server",
    status: str = "ok",
    release: str = "shop@1.0",
    environment: str = "production",
    spans: list[tuple[str, str, float, float]] | None = None,
) -> dict[str, Any]:
    """A transaction event; ``spans`` are (op, description, offset ms, duration ms) under the root."""
    end = time.time() if end is None else end
    start = end - duration_ms / 1000
    root = span_id()
    return {
        "type": "transaction",
        "event_id": uuid.uuid4().hex,
        "transaction": name,
        "start_timestamp": start,
        "timestamp": end,
        "release": release,
        "environment": environment,
        "platform": "python",
        "contexts": {
            "trace": {
                "trace_id": trace_id or uuid.uuid4().hex,
                "span_id": root,
                "parent_span_id": parent_span_id,
                "op": op,
                "status": status,
            }
        },
        "spans": [
            {
                "span_id": span_id(),
                "parent_span_id": root,
                "op": sop,
                "description": description,
                "start_timestamp": start + offset / 1000,
                "timestamp": start + (offset + ms) / 1000,
            }
            for sop, description, offset, ms in (spans or [])
        ],
    }


def n_plus_one_spans(n: int = 6, statement: str = "SELECT * FROM items WHERE id = {}") -> list[Any]:
    return [("db.sql.query", statement.format(i), i * 3.0, 2.0) for i in range(n)]
