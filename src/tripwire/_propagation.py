"""Trace propagation headers, as pure functions: ``sentry-trace``, ``baggage`` and W3C ``traceparent``.

* ``sentry-trace: {trace_id:32 hex}-{span_id:16 hex}[-{0|1}]`` — the last part is the caller's
  sampling decision (absent: the receiver decides).
* ``traceparent: 00-{trace_id}-{span_id}-{flags:2 hex}`` — bit 0 of flags is "sampled".
* ``baggage``: comma-separated ``key=value`` members, percent-encoded; Sentry's dynamic sampling
  context is the members whose key starts with ``sentry-``. Members of other vendors are kept and
  passed on untouched.

Nothing here raises on malformed input: a header that does not parse is ignored, as if absent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import NamedTuple

__all__ = [
    "TraceParent",
    "format_baggage",
    "format_sentry_trace",
    "format_traceparent",
    "parse_baggage",
    "parse_sentry_trace",
    "parse_traceparent",
]

_SENTRY_TRACE = r"^[ \t]*([0-9a-f]{32})?-?([0-9a-f]{16})?-?([01])?[ \t]*$"
_TRACEPARENT = r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})[ \t]*$"
#: Longer baggage is not parsed (W3C's own limit is 8,192 bytes): a client must not make us do
#: unbounded work per request.
MAX_BAGGAGE = 8192
SENTRY_PREFIX = "sentry-"


@functools.cache
def _compiled(rule: str) -> re.Pattern[str]:
    # Compiled with the first incoming header rather than at import: the two header rules cost
    # ``import tripwire`` 0.4 ms, in every process, also in those that never continue a trace.
    return re.compile(rule)


class TraceParent(NamedTuple):
    """The caller's trace as read from ``sentry-trace`` or ``traceparent``."""

    trace_id: str
    parent_span_id: str | None
    #: The caller's sampling decision; None when the caller left it to us.
    sampled: bool | None


def parse_sentry_trace(value: str | None) -> TraceParent | None:
    """``sentry-trace`` as a TraceParent; None when absent or malformed."""
    if not value or len(value) > 128:
        return None
    match = _compiled(_SENTRY_TRACE).match(value)
    if match is None or match.group(1) is None:
        return None
    trace_id, span_id, flag = match.groups()
    if trace_id == "0" * 32:
        return None
    return TraceParent(trace_id, span_id, None if flag is None else flag == "1")


def parse_traceparent(value: str | None) -> TraceParent | None:
    """W3C ``traceparent`` as a TraceParent; None when absent, malformed or an all-zero id."""
    if not value or len(value) > 128:
        return None
    match = _compiled(_TRACEPARENT).match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceParent(trace_id, span_id, bool(int(flags, 16) & 1))


def format_sentry_trace(trace_id: str, span_id: str, sampled: bool | None) -> str:
    if sampled is None:
        return f"{trace_id}-{span_id}"
    return f"{trace_id}-{span_id}-{'1' if sampled else '0'}"


def format_traceparent(trace_id: str, span_id: str, sampled: bool | None) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parse_baggage(value: str | None) -> tuple[dict[str, str], str]:
    """(the ``sentry-`` members without their prefix, the other vendors' members as one string)."""
    sentry: dict[str, str] = {}
    others: list[str] = []
    if not value or len(value) > MAX_BAGGAGE:
        return sentry, ""
    from urllib.parse import unquote  # on first use: not part of ``import tripwire``

    for member in value.split(","):
        member = member.strip()
        if not member:
            continue
        key, sep, item = member.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        if key.startswith(SENTRY_PREFIX):
            # Properties after ";" are not part of the value.
            sentry[unquote(key[len(SENTRY_PREFIX) :])] = unquote(item.partition(";")[0].strip())
        else:
            others.append(member)
    return sentry, ",".join(others)


#: Values that need no percent-encoding (the usual case: ids, rates, versions, environments).
_SAFE = re.compile(r"[A-Za-z0-9._~@+:-]*\Z").match


def _encode(text: str) -> str:
    if _SAFE(text):
        return text  # the common case, without urllib.parse (this runs on the caller, per request)
    from urllib.parse import quote

    return quote(text, safe="")


def format_baggage(dsc: Mapping[str, str], others: str = "") -> str:
    """A ``baggage`` value: the dynamic sampling context as ``sentry-`` members, then ``others``."""
    members = [f"{SENTRY_PREFIX}{_encode(key)}={_encode(value)}" for key, value in dsc.items() if value]
    if others:
        members.append(others)
    return ",".join(members)
