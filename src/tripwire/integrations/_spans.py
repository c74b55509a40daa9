"""What the database and Redis integrations share: wrap a call in an automatic span.

The wrapper asks for the active span first: with no sampled transaction in the context (tracing
off, or this unit of work not sampled) the call runs as it would without tripwire, after one
context-variable read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._tracing import active_span, end_child, start_child

#: Describe a call: (description, data) from the wrapped method's arguments; may raise (then the
#: call runs untraced).
Describe = Callable[..., tuple[str | None, dict[str, Any]]]


def wrap_sync(op: str, describe: Describe) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def traced(*args: Any, **kwargs: Any) -> Any:
            if active_span() is None:
                return original(*args, **kwargs)
            try:
                description, data = describe(*args, **kwargs)
                span = start_child(op, description, data)
            except Exception:
                span = None
            if span is None:
                return original(*args, **kwargs)
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                end_child(span, exc)
                raise
            end_child(span)
            return result

        return traced

    return make


def wrap_async(op: str, describe: Describe) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            if active_span() is None:
                return await original(*args, **kwargs)
            try:
                description, data = describe(*args, **kwargs)
                span = start_child(op, description, data)
            except Exception:
                span = None
            if span is None:
                return await original(*args, **kwargs)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                end_child(span, exc)
                raise
            end_child(span)
            return result

        return traced

    return make


def statement_text(query: Any, context: Any = None) -> str | None:
    """A query as text: a str, bytes, or a composed SQL object (psycopg.sql) rendered with ``context``."""
    if isinstance(query, str):
        return query
    if isinstance(query, bytes | bytearray):
        return bytes(query).decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)
    if as_string is not None and context is not None:
        text = as_string(context)
        return text if isinstance(text, str) else None
    return None
