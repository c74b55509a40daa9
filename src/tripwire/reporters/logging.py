"""A readable report of every event to a Python logger: what developers want on their own machine.

Records carry ``tripwire_ignore=True`` (the attribute the logging integration skips), so a report is
never captured again as a new event, whatever the logger is called.

>>> tripwire.init(reporters=[{"backend": "logging", "logger": "myapp.errors"}])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

from .._exceptions import ConfigurationError
from .._stats import DropCounter
from .._types import Event
from .base import Reporter

#: The record attribute that keeps tripwire's logging integration from capturing a record.
RECORD_MARKER = "tripwire_ignore"

_LEVELS = {
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def _exception_lines(event: Event) -> list[str]:
    values = (event.get("exception") or {}).get("values") or []
    lines: list[str] = []
    for index, value in enumerate(values):
        if index:
            lines.append("")
            lines.append("The above exception led to the following one:")
            lines.append("")
        frames = (value.get("stacktrace") or {}).get("frames") or []
        if frames:
            lines.append("Traceback (most recent call last):")
        for frame in frames:
            marker = "" if frame.get("in_app", True) else "  [library]"
            lines.append(
                f'  File "{frame.get("filename") or frame.get("abs_path")}", line {frame.get("lineno")}, '
                f"in {frame.get('function')}{marker}"
            )
            if frame.get("context_line"):
                lines.append(f"    {str(frame['context_line']).strip()}")
            variables = frame.get("vars")
            if variables and frame.get("in_app", True):
                shown = ", ".join(
                    f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}"
                    for k, v in list(variables.items())[:10]
                )
                lines.append(f"      locals: {shown}")
        name = value.get("type") or "Exception"
        if value.get("module") and value["module"] not in ("builtins", "__main__"):
            name = f"{value['module']}.{name}"
        lines.append(f"{name}: {value.get('value', '')}" if value.get("value") else str(name))
    return lines


def format_event(event: Event) -> str:
    """The multi-line text the logging reporter writes for ``event``."""
    values = (event.get("exception") or {}).get("values") or []
    logentry = event.get("logentry") or {}
    if values:
        last = values[-1]
        title = f"{last.get('type', 'Exception')}: {last.get('value', '')}".rstrip(": ")
    else:
        title = str(logentry.get("formatted") or logentry.get("message") or event.get("message") or "")
    facts = [f"event {event.get('event_id', '?')}"]
    for key in ("level", "release", "environment", "transaction"):
        if event.get(key):
            facts.append(f"{key} {event[key]}")
    lines = [f"tripwire: {title}  [{', '.join(facts)}]"]
    mechanism = (values[-1].get("mechanism") or {}) if values else {}
    if mechanism:
        handled = "handled" if mechanism.get("handled", True) else "unhandled"
        lines.append(f"  caught by: {mechanism.get('type', 'generic')} ({handled})")
    request = event.get("request") or {}
    if request:
        lines.append(f"  request: {request.get('method', '')} {request.get('url', '')}".rstrip())
    user = event.get("user") or {}
    if user:
        lines.append("  user: " + ", ".join(f"{k}={v}" for k, v in user.items()))
    for key, label in (("tags", "tags"), ("extra", "extra")):
        data = event.get(key) or {}
        if data:
            lines.append(f"  {label}: " + ", ".join(f"{k}={v}" for k, v in data.items()))
    crumbs = event.get("breadcrumbs") or {}
    crumb_values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    if crumb_values:
        lines.append(f"  breadcrumbs (last {min(5, len(crumb_values))} of {len(crumb_values)}):")
        for crumb in crumb_values[-5:]:
            text = crumb.get("message") or crumb.get("data") or ""
            lines.append(f"    [{crumb.get('category') or crumb.get('type', '')}] {text}")
    lines.extend("  " + line if line else "" for line in _exception_lines(event))
    return "\n".join(lines)


class LoggingReporter(Reporter):
    """Write each event to ``logger`` (a name or a :class:`logging.Logger`).

    ``level``: a fixed logging level (number or name) for every report; by default the event's own
    level (error → ERROR, warning → WARNING, fatal → CRITICAL, ...).
    """

    name = "logging"

    def __init__(
        self, logger: str | logging.Logger = "tripwire.events", level: int | str | None = None
    ) -> None:
        if isinstance(logger, logging.Logger):
            self.logger = logger
        elif isinstance(logger, str):
            self.logger = logging.getLogger(logger)
        else:
            raise ConfigurationError(f"reporters[logging].logger: expected a name, got {logger!r}")
        if isinstance(level, str):
            resolved = logging.getLevelName(level.upper())
            if not isinstance(resolved, int):
                raise ConfigurationError(f"reporters[logging].level: unknown level {level!r}")
            level = resolved
        self.level = level
        self.stats = DropCounter()

    def send_event(self, event: Event) -> None:
        level = self.level if self.level is not None else _LEVELS.get(str(event.get("level")), logging.ERROR)
        if not self.logger.isEnabledFor(level):
            return
        extra: dict[str, Any] = {RECORD_MARKER: True, "tripwire_event_id": event.get("event_id")}
        self.logger.log(level, "%s", format_event(event), extra=extra)
        self.stats.record_sent(self.name)
