"""Scopes: the tags, user, breadcrumbs, ... that get attached to events.

Model (why it looks like this):

* ``ScopeData`` is immutable. A setter builds a new one and swaps it in, so a snapshot taken at capture
  time is just a reference (O(1)) and concurrent readers never see a half-written scope.
* A ``ScopeHolder`` is the one mutable cell per unit of work (a request, a job). It lives in a
  ``ContextVar``, which only ever holds a ``ScopeHolder``. Tasks and threads started inside the unit of
  work copy the context and so share the holder: a ``set_user`` in a sync view run in a thread pool is
  seen by the middleware's capture. Concurrent units of work have different holders and never see each
  other's data.
* ``isolation_scope()`` installs a fresh holder for a unit of work; ``new_scope()`` installs a local
  fork on top of it (a ``ScopeFork``, whose ``unit`` is the unit of work's holder). Both live in the
  same ``ContextVar``, so entering a unit of work is one ``set()``. The top-level setters change the
  innermost holder; what belongs to the unit of work (session, last event id, trace id) goes to its
  holder.
* Outside any unit of work the process-wide root holder is used.
* The ASGI middleware installs a ``Connection`` (see ``_connection``), a ``ScopeHolder`` that also
  knows its http request or websocket and makes its scope data only when something first reads it.
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple would compile each string
# annotation into a ForwardRef at import (measured: 0.5 ms for Options alone).

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from ._tracing import new_trace_id
from ._types import Breadcrumb, EventProcessor


class SessionTracker(Protocol):
    """A live release-health session attached to a unit of work (see ``_sessions``)."""

    def mark_error(self, *, handled: bool) -> None: ...


_EMPTY: Mapping[str, Any] = MappingProxyType({})


class ScopeData(NamedTuple):
    """What a scope holds. Never mutated: the ``with_*`` methods make a changed copy."""

    tags: Mapping[str, str] = _EMPTY
    extras: Mapping[str, Any] = _EMPTY
    contexts: Mapping[str, Any] = _EMPTY
    user: Mapping[str, Any] | None = None
    level: str | None = None
    fingerprint: tuple[str, ...] | None = None
    transaction: str | None = None
    breadcrumbs: tuple[Breadcrumb, ...] = ()
    #: Run when the event is built (off the caller); integrations add request data this way.
    processors: tuple[EventProcessor, ...] = ()

    def with_tag(self, key: str, value: str) -> "ScopeData":
        return self._replace(tags=MappingProxyType({**self.tags, key: value}))

    def with_tags(self, tags: Mapping[str, str]) -> "ScopeData":
        return self._replace(tags=MappingProxyType({**self.tags, **tags}))

    def with_extra(self, key: str, value: Any) -> "ScopeData":
        return self._replace(extras=MappingProxyType({**self.extras, key: value}))

    def with_context(self, key: str, value: Any) -> "ScopeData":
        return self._replace(contexts=MappingProxyType({**self.contexts, key: value}))

    def with_breadcrumb(self, crumb: Breadcrumb, limit: int) -> "ScopeData":
        # Every breadcrumb (one per log record at INFO and above) comes through here: the copy is
        # made field by field, as _replace (a dict of keywords popped through map) cost ~3x more,
        # and the trimmed tuple by one concatenation (bench/wsgi_bench.py, "WSGI over HTTP").
        if limit <= 0:
            return self
        crumbs = self.breadcrumbs
        if len(crumbs) >= limit:
            crumbs = crumbs[len(crumbs) - limit + 1 :]
        crumbs += (crumb,)
        tags, extras, contexts, user, level, fingerprint, transaction, _, processors = self
        return _new_scope_data(
            ScopeData, (tags, extras, contexts, user, level, fingerprint, transaction, crumbs, processors)
        )

    def with_processor(self, processor: EventProcessor) -> "ScopeData":
        return self._replace(processors=(*self.processors, processor))

    def for_new_unit_of_work(self) -> "ScopeData":
        """What a fresh unit of work inherits: tags, user, contexts, extras; not crumbs or processors."""
        return self._replace(breadcrumbs=(), processors=(), transaction=None)


#: Makes a ScopeData from a tuple of all its fields, in order (what namedtuple's _make does, minus
#: its checks and its Python frame).
_new_scope_data = tuple.__new__


class ScopeHolder:
    """The mutable cell of one unit of work; see the module docstring. Made by :func:`new_holder`.

    No ``__init__``, on purpose: the ASGI middleware makes a holder (a ``Connection``) for every
    request, and CPython calls a class that has an ``__init__`` for about 1,100 instructions more than
    one that has none: about +900 per request, 8% of what the middleware costs (bench/inproc_bench.py).
    """

    __slots__ = ("data", "last_event_id", "session", "trace_id")

    #: True on a unit of work whose integration made a tracing decision when it started (an ASGI
    #: request): outside its sampled span it is "not sampled", not "undecided" (see _tracing).
    sampling_decided = False

    data: ScopeData
    session: SessionTracker | None
    #: The id of the last event captured in this unit of work.
    last_event_id: str | None
    #: Shared by every event of this unit of work (``contexts.trace.trace_id``); made on first use.
    trace_id: str | None

    def unit_of_work(self) -> "ScopeHolder":
        """The holder of the unit of work this holder belongs to: itself."""
        return self


class ScopeFork(ScopeHolder):
    """A ``new_scope()`` fork: its own scope data, over the unit of work it was made in.

    What belongs to the unit of work (session, last event id, trace id) is read from and written to
    ``unit`` (see :func:`isolation_holder`), not to the fork.
    """

    __slots__ = ("unit",)

    def __init__(self, data: ScopeData, unit: ScopeHolder) -> None:
        self.data = data
        self.session = None
        self.last_event_id = None
        self.trace_id = None
        self.unit = unit

    def unit_of_work(self) -> ScopeHolder:
        return self.unit


def new_holder(data: ScopeData, session: SessionTracker | None = None) -> ScopeHolder:
    """A holder for a new unit of work, starting with ``data``."""
    holder = ScopeHolder()
    holder.data = data
    holder.session = session
    holder.last_event_id = None
    holder.trace_id = None
    return holder


_ROOT = new_holder(ScopeData())
#: Run for every event after the scope's own processors (``tripwire.add_event_processor``).
global_processors: tuple[EventProcessor, ...] = ()


def add_global_processor(processor: EventProcessor) -> None:
    """Run ``processor(event, hint)`` on every event of this process (replaced, never mutated)."""
    global global_processors
    global_processors = (*global_processors, processor)


def remove_global_processor(processor: EventProcessor) -> None:
    """Stop running ``processor`` (an integration's, when it is uninstalled)."""
    global global_processors
    global_processors = tuple(p for p in global_processors if p is not processor)


#: The innermost holder: a unit of work's, a ``new_scope()`` fork, or a request's ``Connection``.
_isolation: ContextVar[ScopeHolder] = ContextVar("tripwire.isolation", default=_ROOT)


def current_holder() -> ScopeHolder:
    """The innermost holder: a ``new_scope()`` fork if inside one, else the unit of work's."""
    return _isolation.get()


def isolation_holder() -> ScopeHolder:
    """The unit of work's holder, also from inside a ``new_scope()`` fork."""
    return _isolation.get().unit_of_work()


def snapshot() -> ScopeData:
    """The scope data as it is now: a reference, since ScopeData is immutable."""
    return current_holder().data


def trace_id() -> str:
    """The trace id of the current unit of work (32 hex), created on first use."""
    holder = isolation_holder()
    value = holder.trace_id
    if value is None:
        value = holder.trace_id = new_trace_id()  # not os.urandom: see _tracing.new_span_id
    return value


@contextmanager
def isolation_scope() -> Iterator[ScopeHolder]:
    """A fresh scope for one unit of work (a request, a job, a task).

    It inherits tags, user, contexts and extras of the enclosing scope but starts with no breadcrumbs;
    whatever is set inside stays inside.
    """
    holder = new_holder(snapshot().for_new_unit_of_work())
    token = _isolation.set(holder)
    try:
        yield holder
    finally:
        _isolation.reset(token)


@contextmanager
def new_scope() -> Iterator[ScopeHolder]:
    """A local fork of the current scope: setters inside change the fork only, undone on exit."""
    holder = ScopeFork(snapshot(), isolation_holder())
    token = _isolation.set(holder)
    try:
        yield holder
    finally:
        _isolation.reset(token)


def replace_field(data: ScopeData, **changes: Any) -> ScopeData:
    """A copy of ``data`` with ``changes``; mappings are frozen so nobody mutates shared state."""
    for key, value in changes.items():
        if isinstance(value, dict):
            changes[key] = MappingProxyType(value)
    return data._replace(**changes)


def reset_root() -> None:
    """Forget everything set at process level (for tests)."""
    _ROOT.data = ScopeData()
    _ROOT.session = None
    _ROOT.last_event_id = None
    _ROOT.trace_id = None
    global global_processors
    global_processors = ()
