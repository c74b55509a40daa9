"""Performance tracing on the caller's side: sampling, transactions, spans.

What the caller pays is kept to the minimum, and everything else happens on the worker
(``_transaction_builder``):

* the sampling decision is made once, when a unit of work starts; an unsampled unit of work makes no
  object at all (its trace id, when a caller sent one, is the unit of work's ``trace_id``);
* a sampled span is one slotted object appended to its transaction's list and two clock reads. Its
  id is made only if something needs it before the worker does (an outgoing ``sentry-trace``
  header, an error captured inside it); ids, dicts and JSON are made on the worker.

The active span is kept in a context variable (not in the unit of work's scope holder): concurrent
tasks of one request each see their own innermost span, so their children nest where they were made.
A unit of work's root span is its :class:`Transaction`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ._log import logger
from ._propagation import (
    TraceParent,
    format_baggage,
    format_sentry_trace,
    format_traceparent,
    parse_baggage,
    parse_sentry_trace,
    parse_traceparent,
)

if TYPE_CHECKING:
    import re

    from ._options import Options
    from ._stats import DropCounter


class Client(Protocol):
    """What tracing needs of the client (a Protocol: ``_client`` imports this module)."""

    options: Options
    stats: DropCounter
    trace_targets: tuple[re.Pattern[str], ...] | None
    #: The profiler (``_profiling.Profiler``) when profiling is configured, else None.
    profiler: Any

    def submit_transaction(self, txn: Transaction) -> bool: ...

    def submit_late_span(self, span: Span) -> bool: ...


#: The innermost sampled span of the current context (a Transaction at the root); None otherwise.
_active: ContextVar[Span | None] = ContextVar("tripwire.span", default=None)
#: The same variable, for hot paths (sqlite3's statements) that read it without a function call.
active_var = _active

#: Span statuses (Sentry's vocabulary) for HTTP response statuses.
_HTTP_STATUS = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    409: "already_exists",
    429: "resource_exhausted",
    499: "cancelled",
    501: "unimplemented",
    503: "unavailable",
    504: "deadline_exceeded",
}


def status_for_http(code: int | None) -> str:
    """Sentry's span status for an HTTP status code."""
    if code is None:
        return "unknown"
    if code < 400:
        return "ok"
    known = _HTTP_STATUS.get(code)
    if known is not None:
        return known
    return "invalid_argument" if code < 500 else "internal_error"


def new_span_id() -> str:
    # Not os.urandom: it releases the GIL around its system call, and a caller that gives the GIL
    # up waits for the worker's switch interval to get it back. The random module's generator is
    # seeded from the OS and reseeded in forked children; ids need uniqueness, not secrecy.
    return f"{(_randbits or _load_random().getrandbits)(64):016x}"


def new_trace_id() -> str:
    return f"{(_randbits or _load_random().getrandbits)(128):032x}"


def new_trace_and_span_ids() -> tuple[str, str]:
    """A new trace id and span id from one draw (an unsampled request's first outgoing call)."""
    both = f"{(_randbits or _load_random().getrandbits)(192):048x}"
    return both[:32], both[32:]


#: ``random.getrandbits`` and ``random.random``, bound on first use: ``random`` is not part of
#: ``import tripwire``, and an ``import`` statement per call costs a few hundred instructions.
_randbits: Callable[[int], int] | None = None
_random: Callable[[], float] | None = None


def random_bits() -> Callable[[int], int]:
    """``random.getrandbits`` (for ids made without a Python call of ours)."""
    return _randbits or _load_random().getrandbits


def random_source() -> Callable[[], float]:
    """``random.random``: for a caller that draws on every request without a Python call."""
    return _random or _load_random().random


def _load_random() -> ModuleType:
    global _randbits, _random
    import random

    _randbits = random.getrandbits
    _random = random.random
    return random


class Span:
    """One timed operation inside a transaction. Use :func:`tripwire.start_span` to make one."""

    __slots__ = (
        "_id",
        "_token",
        "data",
        "description",
        "end",
        "op",
        "parent",
        "start",
        "status",
        "transaction",
    )

    transaction: Transaction
    #: The span this one is a child of (None only for the transaction itself).
    parent: Span | None
    op: str | None
    description: str | None
    #: Epoch seconds; ``end`` is None until finished.
    start: float
    end: float | None
    status: str | None
    data: dict[str, Any] | None
    _id: str | None
    _token: Token[Span | None] | None

    @property
    def span_id(self) -> str:
        """This span's id (16 hex), made on first use."""
        value = self._id
        if value is None:
            value = self._id = new_span_id()
        return value

    @property
    def trace_id(self) -> str:
        return self.transaction.trace_id

    @property
    def sampled(self) -> bool:
        return True

    def set_data(self, key: str, value: Any) -> None:
        data = self.data
        if data is None:
            data = self.data = {}
        data[key] = value

    def set_status(self, status: str) -> None:
        self.status = status

    def set_http_status(self, code: int) -> None:
        self.set_data("http.response.status_code", code)
        self.status = status_for_http(code)

    def finish(self, end: float | None = None) -> None:
        """End the span now (or at ``end``, epoch seconds). A second call changes nothing."""
        if self.end is not None:
            return  # finished already
        self.end = time.time() if end is None else end
        txn = self.transaction
        if txn.sent:
            # Its transaction was sent without it (a task that outlived the request): this span
            # goes on its own, as a span item linked by trace id and parent span id.
            try:
                txn.client.submit_late_span(self)
            except Exception:
                logger.exception("tripwire: could not queue a late span")

    # -- context manager: makes this span the active one -------------------------------------------
    def __enter__(self) -> Span:
        self._token = _active.set(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self.status is None:
            self.status = "internal_error"
        self.finish()
        token = self._token
        if token is not None:
            self._token = None
            try:
                _active.reset(token)
            except ValueError:  # exited in another context than it was entered in
                pass

    def to_traceparent(self) -> str:
        """The ``sentry-trace`` value naming this span."""
        return format_sentry_trace(self.trace_id, self.span_id, True)

    def __repr__(self) -> str:
        return f"<Span op={self.op!r} description={self.description!r}>"


class Transaction(Span):
    """The root span of one unit of work (a request, a job); sent as a ``transaction`` item."""

    __slots__ = (
        "baggage",
        "baggage_others",
        "client",
        "dsc",
        "incoming_dsc",
        "name",
        "parent_span_id",
        "profile",
        "request",
        "sample_rand",
        "sample_rate",
        "sent",
        "source",
        "spans",
        "spans_dropped",
        "trace_id_",
    )

    client: Client
    trace_id_: str
    #: The caller's span (from an incoming header), if any.
    parent_span_id: str | None
    name: str
    source: str
    sample_rate: float
    sample_rand: float
    #: The child spans, in the order they started (at most ``max_spans``).
    spans: list[Span]
    spans_dropped: int
    #: The dynamic sampling context, frozen the first time it is read (the first outgoing request).
    dsc: dict[str, str] | None
    #: What the caller sent in its ``baggage`` (sentry- members), and the other vendors' members.
    incoming_dsc: dict[str, str] | None
    baggage_others: str
    #: The outgoing ``baggage`` value, made once (the context it carries is frozen).
    baggage: str | None
    #: Whatever gives the event its ``request`` and its name on the worker (the ASGI Connection).
    request: Any
    #: True once handed to the worker.
    sent: bool
    #: What the profiler keeps for this transaction (``_profiling.ProfileHandle``), or None.
    profile: Any

    @property
    def trace_id(self) -> str:
        return self.trace_id_

    def set_name(self, name: str, source: str = "custom") -> None:
        self.name = name
        self.source = source

    def dynamic_sampling_context(self) -> dict[str, str]:
        """The ``sentry-`` baggage members: frozen at the first read, as the protocol requires.

        Once an outgoing request carried a ``baggage`` header, the context is read back from it,
        so what the worker puts in the envelope header is what was sent.
        """
        dsc = self.dsc
        if dsc is None:
            dsc = self.dsc = parse_baggage(self.outgoing_baggage())[0]
        return dsc

    def outgoing_baggage(self) -> str:
        """The ``baggage`` value of outgoing requests: made once per transaction (then frozen)."""
        baggage = self.baggage
        if baggage is None:
            incoming = self.incoming_dsc
            if incoming:
                # A continued trace keeps its head's context.
                baggage = format_baggage(incoming, self.baggage_others)
            else:
                baggage = (
                    f"sentry-trace_id={self.trace_id_},sentry-sample_rate={_rate(self.sample_rate)},"
                    f"sentry-sample_rand={self.sample_rand:.6f},sentry-sampled=true{_static_members(self.client)}"
                )
                if self.source != "url":  # a URL is no name to sample by (it may hold ids)
                    name = self.current_name()
                    if name:
                        baggage += "," + format_baggage({"transaction": name})
                if self.baggage_others:
                    baggage += "," + self.baggage_others
            self.baggage = baggage
        return baggage

    def current_name(self) -> str:
        request = self.request
        if request is not None and not self.name:
            try:
                return str(request.transaction()[0])
            except Exception:
                return ""
        return self.name

    def finish(self, end: float | None = None) -> None:
        if self.end is not None:
            return
        self.end = time.time() if end is None else end
        try:
            self.client.submit_transaction(self)
        except Exception:
            logger.exception("tripwire: could not queue a transaction")

    def __repr__(self) -> str:
        return f"<Transaction name={self.name!r} op={self.op!r} spans={len(self.spans)}>"


#: (options, the members of every head transaction's baggage that come from them), per client.
_static: tuple[Any, str] = (None, "")


def _static_members(client: Client) -> str:
    """``,sentry-public_key=…,sentry-release=…,sentry-environment=…``: encoded once per client."""
    global _static
    options = client.options
    cached, members = _static
    if cached is not options:
        members = format_baggage(
            {
                "public_key": options.dsn.public_key if options.dsn is not None else "",
                "release": options.release or "",
                "environment": options.environment,
            }
        )
        members = "," + members if members else ""
        _static = (options, members)
    return members


def _rate(value: float) -> str:
    return repr(float(value)).rstrip("0").rstrip(".") if value not in (0.0, 1.0) else str(int(value))


class _NoopSpan:
    """What :func:`start_span` returns when nothing is traced: every method does nothing."""

    __slots__ = ()
    sampled = False
    span_id = None
    trace_id = None

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def set_data(self, key: str, value: Any) -> None:
        pass

    def set_status(self, status: str) -> None:
        pass

    def set_http_status(self, code: int) -> None:
        pass

    def set_name(self, name: str, source: str = "custom") -> None:
        pass

    def finish(self, end: float | None = None) -> None:
        pass

    def __repr__(self) -> str:
        return "<Span not sampled>"


NOOP_SPAN = _NoopSpan()


# -- sampling ---------------------------------------------------------------------------------------


def sample(
    client: Client,
    context: Mapping[str, Any],
    parent: TraceParent | None,
    incoming_dsc: Mapping[str, str] | None,
) -> tuple[bool, float, float]:
    """(sampled, the rate used, sample_rand) for a new unit of work.

    ``traces_sampler`` decides first (it gets the parent's decision in ``parent_sampled``); else the
    parent's decision is honoured; else ``traces_sample_rate``. The random number is the caller's
    ``sentry-sample_rand`` when it sent one, so that every service of a trace decides alike.
    """
    options = client.options
    rand = _incoming_rand(incoming_dsc)
    if rand is None:
        rand = (_random or _load_random().random)()
    parent_sampled = parent.sampled if parent is not None else None
    sampler = options.traces_sampler
    if sampler is not None:
        try:
            result = sampler({**context, "parent_sampled": parent_sampled})
        except Exception:
            logger.exception("tripwire: traces_sampler raised; the unit of work is not traced")
            return False, 0.0, rand
        if isinstance(result, bool):
            rate = 1.0 if result else 0.0
        elif isinstance(result, int | float) and 0.0 <= result <= 1.0:
            rate = float(result)
        else:
            logger.warning("tripwire: traces_sampler returned %r, not a rate; not traced", result)
            return False, 0.0, rand
        return rand < rate, rate, rand
    if parent_sampled is not None:
        incoming_rate = _incoming_rate(incoming_dsc)
        if incoming_rate is None:
            incoming_rate = float(parent_sampled)
        return parent_sampled, incoming_rate, rand
    rate = options.traces_sample_rate or 0.0
    return rand < rate, rate, rand


def head_sample(client: Client) -> tuple[bool, float, float]:
    """:func:`sample` for a unit of work with no caller's trace and no ``traces_sampler``: one draw."""
    rand = (_random or _load_random().random)()
    rate = client.options.traces_sample_rate or 0.0
    return rand < rate, rate, rand


def _incoming_rand(dsc: Mapping[str, str] | None) -> float | None:
    if not dsc:
        return None
    try:
        value = float(dsc.get("sample_rand", ""))
    except ValueError:
        return None
    return value if 0.0 <= value < 1.0 else None


def _incoming_rate(dsc: Mapping[str, str] | None) -> float | None:
    if not dsc:
        return None
    try:
        value = float(dsc.get("sample_rate", ""))
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def read_incoming(headers: Mapping[str, str]) -> tuple[TraceParent | None, dict[str, str] | None, str]:
    """(the caller's trace, its dynamic sampling context, other vendors' baggage) from headers.

    ``sentry-trace`` wins over ``traceparent`` when both came.
    """
    parent = parse_sentry_trace(headers.get("sentry-trace"))
    if parent is None:
        parent = parse_traceparent(headers.get("traceparent"))
    dsc, others = parse_baggage(headers.get("baggage"))
    if parent is None:
        return None, None, others
    if dsc.get("trace_id") not in (None, parent.trace_id):
        dsc = {}  # baggage of another trace than the one continued: not ours to carry on
    return parent, (dsc or None), others


#: Run by the first sampled transaction of the process (see :func:`when_sampled`), then emptied.
_until_sampled: list[Callable[[], None]] = []
_sampled_once = False


def when_sampled(hook: Callable[[], None]) -> None:
    """Run ``hook`` when the first transaction of the process is sampled (at once if one was).

    For span hooks that can cost an unsampled request nothing at all until then: sqlite3's
    statements reach the C methods with no Python frame, in a process that samples nothing, until
    ``hook`` installs the span-recording methods (from then on an unsampled statement costs one
    context-variable read). The switch is for the process, not per connection: connections outlive
    the requests that use them. A hook must be idempotent (two threads may start the first two
    sampled transactions at once).
    """
    if _sampled_once:
        hook()
    else:
        _until_sampled.append(hook)


def _first_sampled() -> None:
    global _sampled_once
    _sampled_once = True
    hooks = list(_until_sampled)
    _until_sampled.clear()
    for hook in hooks:
        try:
            hook()
        except Exception:
            logger.exception("tripwire: could not switch span recording on")


def new_transaction(
    client: Client,
    *,
    name: str,
    op: str | None,
    source: str,
    parent: TraceParent | None,
    incoming_dsc: dict[str, str] | None,
    baggage_others: str,
    sample_rate: float,
    sample_rand: float,
    request: Any = None,
    start: float | None = None,
) -> Transaction:
    """A sampled transaction, started now (not yet active: enter it, or set it with :func:`activate`)."""
    if not _sampled_once:
        _first_sampled()
    txn = Transaction()
    txn.client = client
    txn.transaction = txn
    txn.parent = None
    txn.op = op
    txn.description = None
    txn.start = time.time() if start is None else start
    txn.end = None
    txn.status = None
    txn.data = None
    txn._id = None
    txn._token = None
    txn.trace_id_ = parent.trace_id if parent is not None else new_trace_id()
    txn.parent_span_id = parent.parent_span_id if parent is not None else None
    txn.name = name
    txn.source = source
    txn.sample_rate = sample_rate
    txn.sample_rand = sample_rand
    txn.spans = []
    txn.spans_dropped = 0
    txn.dsc = None
    txn.incoming_dsc = incoming_dsc
    txn.baggage_others = baggage_others
    txn.baggage = None
    txn.request = request
    txn.sent = False
    profiler = client.profiler
    txn.profile = None if profiler is None else profiler.transaction_started(name, op)
    return txn


def child_span(parent: Span, op: str | None, description: str | None) -> Span | None:
    """A new child of ``parent``, started now; None (and counted) when its transaction is full."""
    txn = parent.transaction
    spans = txn.spans
    if len(spans) >= txn.client.options.max_spans:
        if txn.sent:
            # Started after its transaction was sent: kept out of it, sent on its own when it
            # finishes (Span.finish). Its parent's id is made now, on this thread.
            return _late_child(txn, parent, op, description)
        txn.client.stats.record("max_spans", "span")  # over max_spans: counted, not kept
        return None
    if txn.sent:
        return _late_child(txn, parent, op, description)
    span = _new_span(txn, parent, op, description)
    spans.append(span)
    return span


def _late_child(txn: Transaction, parent: Span, op: str | None, description: str | None) -> Span:
    parent.span_id  # noqa: B018 -- made here, never concurrently with the worker
    return _new_span(txn, parent, op, description)


def _new_span(txn: Transaction, parent: Span, op: str | None, description: str | None) -> Span:
    # Every slot set here, started now: no __init__, so a span costs one allocation and these stores.
    span = Span()
    span.transaction = txn
    span.parent = parent
    span.op = op
    span.description = description
    span.start = time.time()
    span.end = None
    span.status = None
    span.data = None
    span._id = None
    span._token = None
    return span


def start_child(op: str, description: str | None, data: dict[str, Any] | None = None) -> Span | None:
    """A child of the active span for an automatic span (a query, a call); None when not traced."""
    parent = _active.get()
    if parent is None:
        return None
    if op == "db" and parent.op == "db" and parent.data is not None and "db.system" in parent.data:
        # An automatic db span inside another one is the same statement one layer down (the
        # driver under SQLAlchemy): the outer span already records it.
        return None
    span = child_span(parent, op, description)
    if span is not None and data:
        span.data = data
    return span


def end_child(span: Span, error: BaseException | None = None) -> None:
    """Finish an automatic span; ``internal_error`` when its operation raised."""
    if error is not None and span.status is None:
        span.status = "internal_error"
    span.finish()


def active_span() -> Span | None:
    """The innermost sampled span of the current context, if any."""
    return _active.get()


def activate(span: Span) -> Token[Span | None]:
    return _active.set(span)


def deactivate(token: Token[Span | None]) -> None:
    _active.reset(token)


# -- outgoing propagation ---------------------------------------------------------------------------


def outgoing_headers(span: Span | None, trace_id: str, *, w3c: bool, decided: bool = False) -> dict[str, str]:
    """The propagation headers of a request made now, from ``span`` (or an untraced unit of work)."""
    if span is not None:
        txn = span.transaction
        span_id = span.span_id
        headers = {
            "sentry-trace": f"{txn.trace_id_}-{span_id}-1",
            "baggage": txn.outgoing_baggage(),
        }
        if w3c:
            headers["traceparent"] = f"00-{txn.trace_id_}-{span_id}-01"
        return headers
    # Not sampled here: say so when this unit of work decided it (the receiver then samples nothing
    # of this trace either); outside any decision, leave it to the receiver (no flag).
    span_id = new_span_id()
    sampled = False if decided else None
    headers = {"sentry-trace": format_sentry_trace(trace_id, span_id, sampled)}
    if w3c:
        headers["traceparent"] = format_traceparent(trace_id, span_id, False)
    return headers


def target_matches(client: Client, url: str) -> bool:
    """True when ``url`` should carry propagation headers (``trace_propagation_targets``)."""
    targets = client.trace_targets
    if targets is None:
        return True
    return any(target.search(url) for target in targets)


def wrap_sampler_context(kind: str, value: Any) -> dict[str, Any]:
    """The ``sampling_context`` handed to ``traces_sampler``: e.g. ``{"asgi_scope": scope}``."""
    return {kind: value}


__all__ = [
    "NOOP_SPAN",
    "Span",
    "Transaction",
    "activate",
    "active_span",
    "child_span",
    "end_child",
    "start_child",
    "deactivate",
    "new_transaction",
    "outgoing_headers",
    "read_incoming",
    "sample",
    "status_for_http",
    "target_matches",
]
