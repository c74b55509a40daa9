"""JSON for the collector's hot path: orjson when installed (the ``server`` extra), else json."""

from __future__ import annotations

import json
import zlib
from typing import Any

import brotli

try:
    import orjson
except ImportError:  # pragma: no cover - the server extra installs it
    orjson = None  # type: ignore[assignment]


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError on invalid input (both backends)."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # orjson is strict (no NaN, Infinity, lone surrogates); json is what SDKs target.
            pass
    try:
        value = json.loads(data)
        # Lone surrogates ("\ud800") cannot be stored as UTF-8 text: replace them with "?" now,
        # once, rather than failing later in the database driver.
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:
        # Deeper than the interpreter's recursion limit (orjson stops at 1024): bad input, not a bug.
        raise ValueError("JSON nested too deeply") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        value = json.loads(text.encode("utf-8", "replace"))
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; values JSON cannot represent become strings."""
    if orjson is not None:
        try:
            return orjson.dumps(value, default=str)
        except TypeError:
            pass  # e.g. integers over 64 bits
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False).encode()


def compact_size(value: Any) -> int | None:
    """The serialized size of plain JSON data, or None if it is not plain (cheap, in C)."""
    try:
        return len(orjson.dumps(value))
    except (TypeError, AttributeError):  # AttributeError: orjson missing (None)
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
