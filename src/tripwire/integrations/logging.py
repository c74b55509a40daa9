"""The logging integration: log records become breadcrumbs and events.

It wraps ``logging.Logger.callHandlers`` instead of adding a handler to the root logger, so it keeps
working whatever ``dictConfig`` does to handlers, and sees records of loggers that do not propagate.
The app's own handlers run first and exactly as before.

* records at or above ``breadcrumb_level`` (default INFO) become breadcrumbs;
* records at or above ``event_level`` (default ERROR) become events: with ``exc_info`` an exception
  event (mechanism ``logging``, handled), otherwise a message event whose ``logentry.message`` is the
  template (``record.msg``), so ``"user %s failed"`` groups as one issue whatever the user is;
* extra attributes (``logger.info("x", extra={...})``) are attached only with ``attach_extra=True``,
  and are scrubbed like everything else;
* tripwire's own logger (``tripwire`` and below) is never fed back in, nor are loggers named in
  :func:`ignore_logger`, nor records logged with ``extra={"tripwire_ignore": True}``.

``callHandlers`` is wrapped when the integration is installed (by ``tripwire.init``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from .. import _deferred, _globals
from .._exceptions import ConfigurationError
from .._types import Breadcrumb, Event
from ._common import Integration, Patches, in_sdk_thread, scrub_mapping

__all__ = [
    "LoggingIntegration",
    "ignore_logger",
    "leave_breadcrumb",
    "level_name",
    "record_to_breadcrumb",
    "report_record",
]

# Logger names (fnmatch patterns) given to ignore_logger().
_IGNORED: set[str] = set()

# Whether a logger name is ignored, by name: matching every pattern against every record cost more
# than making its breadcrumb (bench/RESULTS.md, "WSGI over HTTP"). Replaced by a new dict, never
# cleared, when the patterns change: a thread that matched against the old patterns writes its
# answer into the old dict. Bounded, as an app may name loggers after jobs or tenants.
_ignored_names: dict[str, bool] = {}
_MAX_IGNORED_NAMES = 1024

# logging's level numbers (part of its documented API), so that the defaults need no import.
_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = 10, 20, 30, 40, 50

# Attributes every LogRecord has (anything else came from ``extra=``); computed on first use, when
# there is a record and so ``logging`` is loaded.
_standard_attrs: frozenset[str] | None = None

# Set while we turn a record into an event, so anything logged on the way is not fed back.
_busy = threading.local()


def ignore_logger(name: str) -> None:
    """Never turn records of logger ``name`` (fnmatch patterns allowed: ``"noisy.*"``) into anything."""
    global _ignored_names
    _IGNORED.add(name)
    _ignored_names = {}


def _unignore_logger(name: str) -> None:
    """Undo :func:`ignore_logger` for exactly this name or pattern."""
    global _ignored_names
    _IGNORED.discard(name)
    _ignored_names = {}


def _name_ignored(name: str) -> bool:
    known = _ignored_names  # before reading the patterns: see _ignored_names
    ignored = known.get(name)
    if ignored is None:
        ignored = name == "tripwire" or name.startswith("tripwire.")
        if not ignored:
            for pattern in tuple(_IGNORED):
                if name == pattern or _deferred.fnmatchcase(name, pattern):
                    ignored = True
                    break
        if len(known) >= _MAX_IGNORED_NAMES:
            known.clear()
        known[name] = ignored
    return ignored


def _is_ignored(record: logging.LogRecord) -> bool:
    return _name_ignored(record.name) or bool(getattr(record, "tripwire_ignore", False))


def level_name(levelno: int) -> str:
    """The tripwire level of a logging level number (CRITICAL is ``fatal``)."""
    if levelno >= _CRITICAL:
        return "fatal"
    if levelno >= _ERROR:
        return "error"
    if levelno >= _WARNING:
        return "warning"
    if levelno >= _INFO:
        return "info"
    return "debug"


_LEVEL_NAMES = {_DEBUG: "debug", _INFO: "info", _WARNING: "warning", _ERROR: "error", _CRITICAL: "fatal"}


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        # A format string that does not match its arguments: logging itself reports that on stderr.
        return str(record.msg)


def _standard() -> frozenset[str]:
    global _standard_attrs
    if _standard_attrs is None:
        _standard_attrs = frozenset(
            vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
            | {"message", "asctime", "taskName", "tripwire_ignore", "groupingHash"}
        )
    return _standard_attrs


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    standard = _standard()
    extra = {k: v for k, v in vars(record).items() if k not in standard and not k.startswith("_")}
    return scrub_mapping(extra) if extra else extra


def record_to_breadcrumb(record: logging.LogRecord, *, attach_extra: bool = False) -> Breadcrumb:
    """The breadcrumb for ``record``: type log, category = logger name, formatted message."""
    # Made for every record at INFO and above: logging's own levels by lookup, the message inline
    # (what _message does), to spare two calls.
    levelno = record.levelno
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    crumb: Breadcrumb = {
        "type": "log",
        "category": record.name,
        "level": _LEVEL_NAMES.get(levelno) or level_name(levelno),
        "message": message,
        "timestamp": record.created,
    }
    if attach_extra:
        extra = _extra(record)
        if extra:
            crumb["data"] = extra
    return crumb


def report_record(record: logging.LogRecord, *, attach_extra: bool = False) -> str | None:
    """Report ``record`` as an event with the active client; the event id, or None."""
    if getattr(_busy, "active", False):
        return None
    _busy.active = True
    try:
        return _report(record, attach_extra)
    finally:
        _busy.active = False


def _report(record: logging.LogRecord, attach_extra: bool) -> str | None:
    client = _globals.client
    if client is None:
        return None
    record._tripwire_reported = True
    event: Event = {"logger": record.name}
    hint = {"log_record": record}
    level = level_name(record.levelno)
    extras = _extra(record) if attach_extra else None
    scope_kwargs: dict[str, Any] = {"extras": extras} if extras else {}
    grouping_hash = getattr(record, "groupingHash", None)
    if isinstance(grouping_hash, str) and grouping_hash:
        # BugSnag's handler groups by ``extra={"groupingHash": ...}``; here it is the fingerprint,
        # so every backend groups by it (BugSnag receives it as the groupingHash).
        scope_kwargs["fingerprint"] = [grouping_hash]
    exc_info = record.exc_info
    formatted = _message(record)
    template = record.msg if isinstance(record.msg, str) else formatted
    event["logentry"] = {"message": template, "formatted": formatted}
    if exc_info and exc_info[1] is not None:
        return client.capture_exception(
            exc_info[1],
            mechanism={"type": "logging", "handled": True},
            event=event,
            hint=hint,
            level=level,
            **scope_kwargs,
        )
    return client.capture_message(formatted, level, event=event, hint=hint, **scope_kwargs)


def leave_breadcrumb(record: logging.LogRecord, *, attach_extra: bool = False) -> None:
    """Add ``record`` as a breadcrumb to the current scope (once per record)."""
    client = _globals.client
    if client is None or getattr(record, "_tripwire_crumb", False):
        return
    record._tripwire_crumb = True
    if client.options.max_breadcrumbs:
        crumb = record_to_breadcrumb(record, attach_extra=attach_extra)
        # The hint only matters to a before_breadcrumb hook; do not build it for nothing.
        hint = {"log_record": record} if client.options.before_breadcrumb is not None else None
        client.add_breadcrumb(crumb, hint)


class LoggingIntegration(Integration):
    """Turn log records into breadcrumbs and events (see the module docstring).

    ``breadcrumb_level`` / ``event_level``: logging levels (int or name); ``None`` turns that part off.
    ``attach_extra``: attach the record's ``extra=`` attributes (scrubbed) to events and breadcrumbs.
    ``level``: sentry-sdk's name for ``breadcrumb_level`` (accepted so its configuration works as is).
    """

    identifier: ClassVar[str] = "logging"

    def __init__(
        self,
        breadcrumb_level: int | str | None = _INFO,
        event_level: int | str | None = _ERROR,
        *,
        attach_extra: bool = False,
        level: int | str | None = _INFO,
    ) -> None:
        # ``level`` is sentry-sdk's name for the breadcrumb level: ``LoggingIntegration(level=...,
        # event_level=...)`` copied from a sentry-sdk app means the same here.
        if level != _INFO and breadcrumb_level == _INFO:
            breadcrumb_level = level
        self.breadcrumb_level = _level(breadcrumb_level)
        self.event_level = _level(event_level)
        self.attach_extra = attach_extra
        self._patches = Patches()

    def install(self) -> None:
        self._patches.when_imported("logging", self._patch)

    def _patch(self, module: ModuleType) -> None:
        self._patches.replace(module.Logger, "callHandlers", self._wrap)

    def uninstall(self) -> None:
        self._patches.undo()

    def _wrap(self, original: Callable[[logging.Logger, logging.LogRecord], None]) -> Any:
        handle = self.handle

        def callHandlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            try:
                original(logger, record)
            finally:
                # After the app's handlers, exactly as they would have run without tripwire.
                handle(record)

        return callHandlers

    def handle(self, record: logging.LogRecord) -> None:
        """Turn one record into an event and/or a breadcrumb. Never raises."""
        levelno = record.levelno
        event = self.event_level is not None and levelno >= self.event_level
        crumb = self.breadcrumb_level is not None and levelno >= self.breadcrumb_level
        if not (event or crumb) or _globals.client is None or getattr(_busy, "active", False):
            return
        # Records logged on tripwire's own threads (a before_send hook that logs, say) would loop.
        thread = record.threadName  # already known to the record; None with logging.logThreads off
        if (
            _name_ignored(record.name)
            or getattr(record, "tripwire_ignore", False)
            or (thread.startswith("tripwire") if thread else in_sdk_thread())
        ):
            return
        _busy.active = True
        try:
            # tripwire.logging's handler and filter mark the records they have taken care of.
            if event and not getattr(record, "_tripwire_reported", False):
                _report(record, self.attach_extra)
            if crumb:
                leave_breadcrumb(record, attach_extra=self.attach_extra)
        except Exception:
            # Logging here could recurse; the app's own handlers have already seen the record.
            pass
        finally:
            _busy.active = False


def _level(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    # A level given by name: only logging knows the names (custom levels too).
    number = logging.getLevelName(value.upper())
    if not isinstance(number, int):
        raise ConfigurationError(f"LoggingIntegration: unknown logging level {value!r}")
    return number
