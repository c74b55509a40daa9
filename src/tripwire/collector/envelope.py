"""Parsing of Sentry envelopes (newline-delimited: a header line, then item header + payload pairs)."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import _json


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope; the message says what is wrong, for a 400 answer."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One envelope item: its header (``type``, ``length``, ...) and raw payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        """The payload parsed as JSON (EnvelopeError if it is not)."""
        try:
            return _json.loads(self.payload)
        except ValueError as exc:
            raise EnvelopeError(f"{self.type} item payload is not valid JSON: {exc}") from None


def _header(line: bytes, what: str, max_header: int) -> dict[str, Any]:
    if len(line) > max_header:
        raise EnvelopeError(f"{what} is longer than {max_header} bytes")
    try:
        value = _json.loads(line)
    except ValueError as exc:
        raise EnvelopeError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} must be a JSON object")
    return value


def parse_envelope(
    body: bytes, *, max_header: int = 8192, max_items: int = 1000
) -> tuple[dict[str, Any], list[Item]]:
    """Split an envelope into its header and items; raise :class:`EnvelopeError` if malformed."""
    if not body.strip():
        raise EnvelopeError("empty envelope")
    end = len(body)
    nl = body.find(b"\n")
    header = _header(body[: nl if nl >= 0 else end], "envelope header", max_header)
    pos = nl + 1 if nl >= 0 else end
    items: list[Item] = []
    while pos < end:
        nl = body.find(b"\n", pos)
        line = body[pos : nl if nl >= 0 else end]
        pos = nl + 1 if nl >= 0 else end
        if not line.strip():
            continue  # trailing or blank lines between items are tolerated
        item_header = _header(line, f"item header #{len(items) + 1}", max_header)
        if not isinstance(item_header.get("type"), str) or not item_header["type"]:
            raise EnvelopeError(f"item header #{len(items) + 1} has no type")
        length = item_header.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise EnvelopeError(f"item #{len(items) + 1} has an invalid length {length!r}")
            payload = body[pos : pos + length]
            if len(payload) < length:
                raise EnvelopeError(
                    f"item #{len(items) + 1} is truncated: length says {length} bytes, {len(payload)} present"
                )
            pos += length
            if pos < end and body[pos : pos + 1] == b"\n":
                pos += 1
        else:
            nl = body.find(b"\n", pos)
            payload = body[pos : nl if nl >= 0 else end]
            pos = nl + 1 if nl >= 0 else end
        items.append(Item(item_header, payload))
        if len(items) > max_items:
            raise EnvelopeError(f"more than {max_items} items in one envelope")
    return header, items
