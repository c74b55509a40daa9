"""JSON for the collector's hot path: orjson (a required dependency), with the standard library's
json for what orjson refuses (NaN, lone surrogates, integers over 64 bits)."""

from __future__ import annotations

import json
import zlib
from typing import Any

import brotli
import orjson

#: Deepest nesting accepted: orjson's own limit, also applied where the standard library parses.
MAX_DEPTH = 1024
_TOO_DEEP = "JSON nested too deeply"


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError on invalid input (both backends)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson is strict (no NaN, Infinity, lone surrogates); json is what SDKs target.
        pass
    # Deeper than orjson's limit is bad input, not a bug. The interpreter's recursion limit (the
    # RecursionError) bounded json's parser up to Python 3.11; since 3.12 its C parser goes far
    # deeper, hence the explicit check.
    try:
        value = json.loads(data)
        if _deeper_than(value, MAX_DEPTH):
            raise ValueError(_TOO_DEEP)
        # Lone surrogates ("\ud800") cannot be stored as UTF-8 text: replace them with "?" now,
        # once, rather than failing later in the database driver.
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        value = json.loads(text.encode("utf-8", "replace"))
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in ``value`` (without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; values JSON cannot represent become strings."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        pass  # e.g. integers over 64 bits
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False).encode()


def compact_size(value: Any) -> int | None:
    """The serialized size of plain JSON data, or None if it is not plain (cheap, in C)."""
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return None


def pack_event(event: Any) -> bytes:
    """The stored form of a normalized event: ``b"B"`` + brotli (quality 1) of its JSON.

    Brotli at quality 1 compresses event JSON about as well as zlib level 1 (to ~17 %) in less
    than half the CPU time, which matters because every event goes through here.
    """
    return b"B" + bytes(brotli.compress(dumps(event), quality=1))


def unpack_event(blob: bytes) -> Any:
    """Inverse of :func:`pack_event`; also reads the older zlib form (starts with ``x``)."""
    if blob[:1] == b"B":
        return loads(bytes(brotli.decompress(blob[1:])))
    return loads(zlib.decompress(blob))
