"""A Sentry-shaped scope object, for code written against sentry-sdk's scope API.

tripwire's own API is the flat setters (``tripwire.set_tag``) over immutable scope data (see
``_scope``). Code migrated from sentry-sdk calls ``sentry_sdk.get_current_scope().set_tag(...)``,
``with configure_scope() as scope:`` or ``with push_scope() as scope:``; :class:`Scope` is a thin view
of one scope holder that makes those calls work unchanged, each one swapping in new scope data as the
flat setters do. It holds no data of its own.

>>> with tripwire.push_scope() as scope:  # doctest: +SKIP
...     scope.set_tag("step", "import")
...     scope.user = {"email": "ann@example.com"}
...     tripwire.capture_exception()
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import _api, _globals, _scope
from ._log import logger
from ._types import Breadcrumb, EventProcessor, Hint


class Scope:
    """A view of one scope: what it sets applies to events captured in that scope."""

    __slots__ = ("_holder",)

    def __init__(self, holder: _scope.ScopeHolder) -> None:
        self._holder = holder

    def _set(self, data: _scope.ScopeData) -> None:
        self._holder.data = data

    @contextmanager
    def _current(self) -> Iterator[None]:
        # The flat setters change the current holder: make it this scope's for one call, so both
        # APIs validate and convert alike (and never raise into the app).
        token = _scope._isolation.set(self._holder)
        try:
            yield
        finally:
            _scope._isolation.reset(token)

    def set_tag(self, key: str, value: Any) -> None:
        with self._current():
            _api.set_tag(key, value)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with self._current():
            _api.set_tags(tags)

    def remove_tag(self, key: str) -> None:
        tags = {k: v for k, v in self._holder.data.tags.items() if k != key}
        self._set(_scope.replace_field(self._holder.data, tags=tags))

    def set_extra(self, key: str, value: Any) -> None:
        with self._current():
            _api.set_extra(key, value)

    def set_context(self, key: str, value: Mapping[str, Any] | None) -> None:
        with self._current():
            _api.set_context(key, value)

    def set_user(self, user: Mapping[str, Any] | None) -> None:
        with self._current():
            _api.set_user(user)

    @property
    def user(self) -> Mapping[str, Any] | None:
        return self._holder.data.user

    @user.setter
    def user(self, value: Mapping[str, Any] | None) -> None:
        # The Sentry docs' own example: ``scope.user = {"email": ...}``.
        self.set_user(value)

    def set_level(self, level: str | None) -> None:
        with self._current():
            _api.set_level(level)

    @property
    def level(self) -> str | None:
        return self._holder.data.level

    @level.setter
    def level(self, value: str | None) -> None:
        self.set_level(value)

    @property
    def fingerprint(self) -> list[str] | None:
        value = self._holder.data.fingerprint
        return list(value) if value is not None else None

    @fingerprint.setter
    def fingerprint(self, value: list[str] | None) -> None:
        with self._current():
            _api.set_fingerprint(value)

    def set_transaction_name(self, name: str | None) -> None:
        with self._current():
            _api.set_transaction(name)

    @property
    def transaction(self) -> str | None:
        return self._holder.data.transaction

    @transaction.setter
    def transaction(self, name: str | None) -> None:
        self.set_transaction_name(name)

    def add_breadcrumb(
        self, crumb: Breadcrumb | None = None, hint: Hint | None = None, **kwargs: Any
    ) -> None:
        """sentry-sdk's form: a breadcrumb dict and/or its fields as keywords."""
        client = _globals.client
        if client is None:
            return
        full: Breadcrumb = {"timestamp": time.time(), "type": "default", "level": "info"}
        try:
            full.update(crumb or {})
            full.update(kwargs)
        except Exception:
            logger.warning("tripwire: add_breadcrumb expects a breadcrumb dict, got %s", type(crumb).__name__)
            return
        with self._current():
            client.add_breadcrumb(full, hint)

    def clear_breadcrumbs(self) -> None:
        self._set(self._holder.data._replace(breadcrumbs=()))

    def add_event_processor(self, processor: EventProcessor) -> None:
        """Run ``processor(event, hint)`` (returns the event, changed or not, or None to drop it) on
        events of this scope, on the worker when the event is built."""
        self._set(self._holder.data.with_processor(processor))

    def clear(self) -> None:
        """Forget everything set on this scope."""
        self._set(_scope.ScopeData())


def get_current_scope() -> Scope:
    """The innermost scope (a ``new_scope()`` fork inside one, else the unit of work's)."""
    return Scope(_scope.current_holder())


def get_isolation_scope() -> Scope:
    """The unit of work's scope (a request's, a job's), also from inside a ``new_scope()``."""
    return Scope(_scope.isolation_holder())


def get_global_scope() -> Scope:
    """The process-wide scope every unit of work inherits from."""
    return Scope(_scope._ROOT)


@contextmanager
def configure_scope() -> Iterator[Scope]:
    """sentry-sdk 1.x compatibility: the current scope, changed in place (what
    ``get_current_scope()`` returns). New code sets on ``tripwire`` directly."""
    yield get_current_scope()


@contextmanager
def push_scope() -> Iterator[Scope]:
    """sentry-sdk 1.x compatibility: ``new_scope()`` yielding its scope; undone on exit."""
    with _scope.new_scope() as holder:
        yield Scope(holder)


def add_event_processor(processor: EventProcessor) -> None:
    """Run ``processor(event, hint)`` on every event of this process, after the scopes' own."""
    _scope.add_global_processor(processor)
