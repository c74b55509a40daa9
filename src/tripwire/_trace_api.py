"""The manual tracing API: ``start_span``, ``@trace``, ``continue_trace``, ``get_traceparent``,
``get_baggage`` (see docs/tracing.md). Never raises into user code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from . import _globals, _scope
from ._log import logger
from ._propagation import format_sentry_trace
from ._tracing import (
    NOOP_SPAN,
    Span,
    Transaction,
    active_span,
    child_span,
    new_span_id,
    new_transaction,
    read_incoming,
    sample,
)

F = TypeVar("F", bound=Callable[..., Any])
AnySpan = Span | Any  # a Span, or the no-op span when nothing is traced


def _decides_itself(holder: _scope.ScopeHolder) -> bool:
    # A unit of work whose integration already made the sampling decision (an ASGI request): when
    # it decided "not sampled", a span started inside must not start a transaction of its own.
    from ._connection import Connection

    return isinstance(holder, Connection)


def start_span(*, op: str | None = None, name: str | None = None, description: str | None = None) -> AnySpan:
    """A span, started now, to use as a context manager (``with``) or to ``.finish()`` yourself.

    Inside a sampled transaction it is a child of the innermost span; outside any, it starts a
    transaction of its own (sampled by ``traces_sample_rate`` / ``traces_sampler``). When nothing
    is traced it is a no-op object with the same methods.

    >>> with tripwire.start_span(op="task", name="resize images"):  # doctest: +SKIP
    ...     resize()
    """
    try:
        client = _globals.client
        if client is None or not client.tracing:
            return NOOP_SPAN
        label = name if name is not None else description
        parent = active_span()
        if parent is not None:
            span = child_span(parent, op, label)
            return NOOP_SPAN if span is None else span
        holder = _scope.isolation_holder()
        if _decides_itself(holder):
            return NOOP_SPAN
        return _root(client, op, label or "<unlabeled transaction>", None, None, "")
    except Exception:
        logger.exception("tripwire: start_span failed; the block runs untraced")
        return NOOP_SPAN


def _root(
    client: Any,
    op: str | None,
    name: str,
    parent: Any,
    incoming_dsc: dict[str, str] | None,
    others: str,
) -> AnySpan:
    context = {"transaction_context": {"name": name, "op": op}}
    sampled, rate, rand = sample(client, context, parent, incoming_dsc)
    if not sampled:
        next(client.sampled_out)
        return NOOP_SPAN
    return new_transaction(
        client,
        name=name,
        op=op,
        source="custom",
        parent=parent,
        incoming_dsc=incoming_dsc,
        baggage_others=others,
        sample_rate=rate,
        sample_rand=rand,
    )


@overload
def trace(func: F, /) -> F: ...


@overload
def trace(*, op: str | None = None, name: str | None = None) -> Callable[[F], F]: ...


def trace(func: Any = None, /, *, op: str | None = None, name: str | None = None) -> Any:
    """Run every call of a function (sync or async) in a span named after it.

    >>> @tripwire.trace  # doctest: +SKIP
    ... def render(page): ...
    >>> @tripwire.trace(op="cache", name="warm cache")  # doctest: +SKIP
    ... async def warm(): ...
    """

    def decorate(fn: F) -> F:
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        span_op = op or "function"

        import inspect  # only when decorating: inspect is costly to import

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with start_span(op=span_op, name=label):
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with start_span(op=span_op, name=label):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    if func is not None:
        return decorate(func)
    return decorate


def continue_trace(
    headers: Mapping[str, str], *, op: str | None = None, name: str = "<unlabeled transaction>"
) -> AnySpan:
    """A transaction continuing the trace in ``headers`` (``sentry-trace``/``traceparent``, ``baggage``).

    For hand-rolled propagation (a queue message, a subprocess' environment): the caller's sampling
    decision is honoured. Use it as a context manager around the unit of work. Errors reported in
    the current unit of work carry the continued trace id even when it is not sampled.

    >>> with tripwire.continue_trace(message.headers, op="queue.process", name="resize"):  # doctest: +SKIP
    ...     handle(message)
    """
    try:
        client = _globals.client
        if client is None:
            return NOOP_SPAN
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        parent, dsc, others = read_incoming(lowered)
        holder = _scope.isolation_holder()
        if parent is not None and holder is not _scope._ROOT:
            # The unit of work's errors join the continued trace; never the process-wide root's.
            holder.trace_id = parent.trace_id
        if not client.tracing:
            return NOOP_SPAN
        return _root(client, op, name, parent, dsc, others)
    except Exception:
        logger.exception("tripwire: continue_trace failed; the block runs untraced")
        return NOOP_SPAN


def get_traceparent() -> str | None:
    """The ``sentry-trace`` value to send along with work handed elsewhere; None without a client."""
    try:
        if _globals.client is None:
            return None
        span = active_span()
        if span is not None:
            return span.to_traceparent()
        decided = _globals.client.tracing and _scope.isolation_holder().sampling_decided
        sampled = False if decided else None
        return format_sentry_trace(_scope.trace_id(), new_span_id(), sampled)
    except Exception:
        logger.exception("tripwire: get_traceparent failed")
        return None


def get_baggage() -> str | None:
    """The ``baggage`` value (the dynamic sampling context) to send along; None outside a trace."""
    try:
        span = active_span()
        if span is None:
            return None
        return span.transaction.outgoing_baggage() or None
    except Exception:
        logger.exception("tripwire: get_baggage failed")
        return None


@contextmanager
def job_transaction(name: str, op: str) -> Iterator[None]:
    """A transaction around a job (``@tripwire.monitor``) when tracing is on and none is active."""
    span = start_span(op=op, name=name) if active_span() is None else NOOP_SPAN
    if isinstance(span, Transaction):
        span.source = "task"
    with span:
        yield


__all__ = ["continue_trace", "get_baggage", "get_traceparent", "job_transaction", "start_span", "trace"]
