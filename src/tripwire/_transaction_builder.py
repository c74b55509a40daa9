"""The ``transaction`` event of a finished :class:`~tripwire._tracing.Transaction`, built on the worker.

Everything the caller put off is done here: span ids for spans nobody asked an id of, the name and
the request of an ASGI transaction (from its Connection, as for error events), URL scrubbing of
``http.client`` spans, timestamps of spans still running when the transaction ended, and making
user-set span data JSON-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._options import Options
from ._scrub import Scrubber
from ._serialize import safe_repr
from ._tracing import Span, Transaction, new_trace_id
from ._types import Event
from ._version import __version__

SDK_NAME = "tripwire.python"
_PLAIN = (str, int, float, bool, type(None))


def build_transaction(txn: Transaction, options: Options, scrubber: Scrubber) -> Event:
    """The Sentry ``transaction`` event of ``txn`` (finished), scrubbed by ``scrubber``."""
    end = txn.end if txn.end is not None else txn.start
    name, source = txn.name, txn.source
    request = txn.request
    event: Event = {
        "type": "transaction",
        "event_id": new_trace_id(),  # 32 hex digits from the random module: no system call
        "platform": "python",
        "start_timestamp": txn.start,
        "timestamp": end,
        "environment": options.environment,
        "sdk": {
            "name": SDK_NAME,
            "version": __version__,
            "packages": [{"name": "pypi:tripwire", "version": __version__}],
        },
    }
    if options.release:
        event["release"] = options.release
    if options.server_name:
        event["server_name"] = options.server_name
    if request is not None:
        if not name:
            name, source = request.transaction()
        event["request"] = request.request_data(scrubber)
        _apply_scope(event, request)
    event["transaction"] = name or "<unlabeled transaction>"
    event["transaction_info"] = {"source": source}
    trace: dict[str, Any] = {
        "type": "trace",
        "trace_id": txn.trace_id_,
        "span_id": txn.span_id,
        "op": txn.op or "default",
        "status": txn.status or "ok",
        "origin": "auto" if request is not None else "manual",
    }
    if txn.parent_span_id:
        trace["parent_span_id"] = txn.parent_span_id
    if txn.data:
        trace["data"] = _data(txn.data, scrubber)
    contexts = event.setdefault("contexts", {})
    contexts["trace"] = trace
    profile = txn.profile
    if profile is not None and profile.profiler_id:
        # Ran while the continuous profiler ran: the UI finds its samples in that profiler's chunks.
        contexts["profile"] = {"profiler_id": profile.profiler_id}
        trace_data = trace.setdefault("data", {})
        trace_data["profiler_id"] = profile.profiler_id
        trace_data["thread.id"] = str(profile.thread_id)
    event["spans"] = [_span(span, txn, end, scrubber) for span in txn.spans]
    if txn.spans_dropped:
        event.setdefault("extra", {})["tripwire.spans_dropped"] = txn.spans_dropped
    return event


def _span(span: Span, txn: Transaction, txn_end: float, scrubber: Scrubber) -> dict[str, Any]:
    parent = span.parent if span.parent is not None else txn
    out: dict[str, Any] = {
        "trace_id": txn.trace_id_,
        "span_id": span.span_id,
        "parent_span_id": parent.span_id,
        "op": span.op or "default",
        "start_timestamp": span.start,
        # Spans still running when the transaction ended were cut at its end (submit_transaction).
        "timestamp": span.end if span.end is not None else max(txn_end, span.start),
        "status": span.status or "ok",
        "origin": "manual" if span.op is None or not span.op.startswith(("http", "db")) else "auto",
    }
    description = span.description
    data = span.data
    if data:
        url = data.get("url")
        if isinstance(url, str):
            # Outgoing HTTP: the URL is scrubbed here, off the caller (passwords, secret parameters).
            base, _, query = url.partition("#")[0].partition("?")
            clean = _safely(scrubber.scrub_url, base)
            data = {**data, "url": clean}
            if query:
                data["http.query"] = _safely(scrubber.scrub_query_string, query)
            method = data.get("http.request.method")
            description = f"{method} {clean}" if method else clean
        out["data"] = _data(data, scrubber)
    if description is not None:
        out["description"] = description if len(description) <= 2048 else description[:2045] + "..."
    return out


def build_span_item(span: Span, options: Options, scrubber: Scrubber) -> dict[str, Any]:
    """A span that finished after its transaction was sent, in Sentry's span v2 shape.

    It names its transaction (``sentry.segment.id``) and its parent, so a server that keeps the
    trace can put it back where it started.
    """
    txn = span.transaction
    end = span.end if span.end is not None else span.start
    legacy = _span(span, txn, end, scrubber)
    attributes: dict[str, Any] = {
        "sentry.op": legacy["op"],
        "sentry.origin": legacy["origin"],
        "sentry.segment.id": txn.span_id,
        "sentry.environment": options.environment,
        "sentry.sdk.name": SDK_NAME,
        "sentry.sdk.version": __version__,
    }
    if txn.name:
        attributes["sentry.segment.name"] = txn.name
    if options.release:
        attributes["sentry.release"] = options.release
    if span.status and span.status != "ok":
        attributes["sentry.status"] = span.status  # v2 keeps only ok/error; Sentry's word stays here
    for key, value in (legacy.get("data") or {}).items():
        attributes[key] = value
    return {
        "trace_id": txn.trace_id_,
        "span_id": legacy["span_id"],
        "parent_span_id": legacy["parent_span_id"],
        "name": legacy.get("description") or legacy["op"],
        "status": "ok" if legacy["status"] == "ok" else "error",
        "is_segment": False,
        "start_timestamp": span.start,
        "end_timestamp": end,
        "attributes": {key: _attribute(value) for key, value in attributes.items()},
    }


def _attribute(value: Any) -> dict[str, Any]:
    # Span v2 attributes are typed: {"type": ..., "value": ...}.
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int):
        return {"type": "integer", "value": value}
    if isinstance(value, float):
        return {"type": "double", "value": value}
    return {"type": "string", "value": value if isinstance(value, str) else str(value)}


def _safely(scrub: Any, text: str) -> str:
    try:
        return str(scrub(text))
    except Exception:
        return "[Filtered]"


def _data(data: Mapping[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[str(key)] = value if isinstance(value, _PLAIN) else safe_repr(value, 1024)
    try:
        scrubbed = scrubber.scrub_mapping(out)
    except Exception:
        return {}
    return dict(scrubbed) if isinstance(scrubbed, Mapping) else out


def _apply_scope(event: Event, request: Any) -> None:
    # The request's scope (tags, user, contexts) as it was when the transaction was built; only if
    # something made it (reading ``data`` would make it, and add a processor, for nothing).
    data = getattr(request, "_data", None)
    if data is None:
        return
    if data.tags:
        event["tags"] = dict(data.tags)
    if data.user:
        event["user"] = dict(data.user)
    if data.contexts:
        event["contexts"] = {k: v for k, v in data.contexts.items() if k != "trace"}
