"""Performance issues as events: an N+1 finding becomes an event of its own issue type.

The event goes through the same path as errors (issue, counters, alerts); its grouping hash is
the finding's fingerprint (transaction name and normalized statement), and its trace context
points at the transaction, so the issue links to an example trace.
"""

from __future__ import annotations

import uuid
from typing import Any

from .. import _json
from ..store.batch import DigestedEvent
from .model import Transaction
from .nplusone import NPlusOne, detect

#: The issue type (``issues.type``) of N+1 query issues.
N_PLUS_ONE = "N+1 Query"
_NAMESPACE = uuid.UUID("6f1c9a52-6b5e-4f5e-9f65-5f0c2a8f1d11")


def performance_events(tx: Transaction, received_at: float) -> list[DigestedEvent]:
    return [_event(tx, finding, received_at) for finding in detect(tx)]


def _event(tx: Transaction, finding: NPlusOne, received_at: float) -> DigestedEvent:
    event_id = uuid.uuid5(_NAMESPACE, f"{tx.event_id}:{finding.fingerprint}").hex
    title = f"{N_PLUS_ONE}: {finding.statement}"[:200]
    data: dict[str, Any] = {
        "event_id": event_id,
        "timestamp": tx.timestamp,
        "level": "warning",
        "platform": "other",
        "transaction": tx.name,
        "release": tx.release or None,
        "environment": tx.environment,
        "message": f"{finding.statement} ran {finding.repeats} times in a row in {tx.name}",
        "contexts": {"trace": {"trace_id": tx.trace_id, "span_id": tx.span_id, "op": tx.op}},
        "tags": {"transaction": tx.name, "performance_issue": "n_plus_one"},
        "performance_issue": {
            "type": "n_plus_one",
            "statement": finding.statement,
            "repeats": finding.repeats,
            "total_ms": round(finding.total_ms, 3),
            "span_ids": finding.span_ids[:50],
            "transaction_event_id": tx.event_id,
        },
        "title": title,
        "culprit": tx.name,
    }
    return DigestedEvent(
        project_id=tx.project_id,
        event_id=event_id,
        timestamp=tx.timestamp,
        received_at=received_at,
        level="warning",
        title=title,
        culprit=tx.name,
        type=N_PLUS_ONE,
        value=finding.statement[:200],
        release=tx.release or None,
        environment=tx.environment,
        grouping_version="performance:1",
        grouping_hash=finding.fingerprint,
        grouping_explanation={
            "version": "performance:1",
            "strategy": "n_plus_one",
            "components": [N_PLUS_ONE, tx.name, finding.statement],
            "description": "grouped by transaction name and normalized statement",
        },
        tags=[("transaction", tx.name[:200]), ("performance_issue", "n_plus_one")]
        + ([("release", tx.release)] if tx.release else [])
        + [("environment", tx.environment)],
        data=_json.pack_event(data),
        trace_id=tx.trace_id,
        span_id=tx.span_id,
    )
