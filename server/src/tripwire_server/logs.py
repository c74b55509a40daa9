"""Structured logs from ``log`` envelope items (``sentry_sdk.logger``, ``Sentry.logger``).

A ``log`` item holds ``{"items": [record, ...]}`` (its ``item_count`` says how many); each record has
``timestamp``, ``level``, ``body``, ``trace_id`` and ``attributes`` (``{key: {"value": v, "type":
t}}``). Records are kept with their attributes flattened to ``{key: value}``, bounded: the body
8192 characters, 64 attributes of 1024 characters each.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .normalize import parse_timestamp, trim
from .store.log_records import LogRow

MAX_BODY = 8192
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE = 1024
#: Levels of the Sentry logs protocol, lowest first.
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
_LEVEL_ALIASES = {"warning": "warn", "critical": "fatal", "err": "error"}
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def _level(value: Any) -> str:
    text = str(value or "info").lower()
    text = _LEVEL_ALIASES.get(text, text)
    return text if text in LEVELS else "info"


def _attributes(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(value, dict):
        return out
    for key, attr in value.items():
        if len(out) >= MAX_ATTRIBUTES:
            break
        raw = attr.get("value") if isinstance(attr, dict) else attr
        # Kept as text (3 -> "3", True -> "true") so search by attribute is one comparison.
        if isinstance(raw, (bool, int, float)):
            out[trim(key, 128)] = json.dumps(raw)
        elif raw is not None:
            out[trim(key, 128)] = trim(raw, MAX_ATTRIBUTE)
    return out


def attributes_json(attributes: dict[str, str]) -> str:
    """The stored form of attributes: compact, keys sorted (what attribute search matches)."""
    return json.dumps(attributes, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def from_log_item(data: Any, project_id: int, received_at: float) -> list[LogRow]:
    """The records of a ``log`` item payload (ValueError if it is not one)."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError("log item without an items list")
    rows = []
    for record in data["items"]:
        if not isinstance(record, dict):
            continue
        ts = parse_timestamp(record.get("timestamp"))
        if ts is None or ts > received_at + 60:
            ts = received_at
        trace_id = str(record.get("trace_id") or "").lower().replace("-", "")
        rows.append(
            LogRow(
                project_id=project_id,
                timestamp=ts,
                received_at=received_at,
                level=_level(record.get("level")),
                body=trim(record.get("body") or "", MAX_BODY),
                trace_id=trace_id if _TRACE_ID.match(trace_id) else None,
                attributes=attributes_json(_attributes(record.get("attributes"))),
            )
        )
    return rows


def parse_attributes(text: str) -> tuple[tuple[str, str], ...]:
    """``key=value`` pairs separated by spaces (``warehouse=north user.id=42``)."""
    pairs = []
    for part in text.split():
        key, sep, value = part.partition("=")
        if sep and key:
            pairs.append((key, value))
    return tuple(pairs[:10])
