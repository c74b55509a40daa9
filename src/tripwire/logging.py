"""Logging pieces for people who configure logging by hand.

The logging integration (on by default) needs no configuration. If you would rather say exactly which
loggers report, turn it off (``disabled_integrations=["logging"]``) and use these::

    import logging, tripwire.logging

    handler = tripwire.logging.TripwireHandler(level=logging.ERROR)   # records -> events
    crumbs = tripwire.logging.BreadcrumbFilter(level=logging.INFO)    # records -> breadcrumbs
    logger = logging.getLogger("myapp")
    logger.addHandler(handler)
    logger.addFilter(crumbs)

or with ``logging.config.dictConfig``::

    "handlers": {"tripwire": {"class": "tripwire.logging.TripwireHandler", "level": "ERROR"}},
    "filters": {"crumbs": {"()": "tripwire.logging.BreadcrumbFilter", "level": "INFO"}},

Both do nothing until :func:`tripwire.init` is called, never raise, and mark the records they handled
so that the integration, if it is on too, does not report them a second time.
"""

from __future__ import annotations

import logging

from .integrations.logging import _is_ignored, _level, leave_breadcrumb, report_record

__all__ = ["BreadcrumbFilter", "TripwireHandler"]


class TripwireHandler(logging.Handler):
    """A logging handler that reports each record it receives as a tripwire event.

    Records with ``exc_info`` become exception events (mechanism ``logging``, handled); others become
    message events grouped by their template. ``attach_extra=True`` attaches (scrubbed) ``extra=``
    attributes.

    >>> logging.getLogger("jobs").addHandler(TripwireHandler(level=logging.ERROR))  # doctest: +SKIP
    """

    def __init__(self, level: int | str = logging.ERROR, *, attach_extra: bool = False) -> None:
        super().__init__(_level(level) or logging.NOTSET)
        self.attach_extra = attach_extra

    def emit(self, record: logging.LogRecord) -> None:
        if _is_ignored(record) or getattr(record, "_tripwire_reported", False):
            return
        try:
            report_record(record, attach_extra=self.attach_extra)
        except Exception:
            self.handleError(record)


class BreadcrumbFilter(logging.Filter):
    """A logging filter that leaves a breadcrumb for every record at or above ``level``.

    It never filters anything out. Attach it to a logger (``logger.addFilter``) or a handler.
    """

    def __init__(self, level: int | str = logging.INFO, *, attach_extra: bool = False) -> None:
        super().__init__()
        self.level = _level(level) or logging.NOTSET
        self.attach_extra = attach_extra

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level and not _is_ignored(record):
            try:
                leave_breadcrumb(record, attach_extra=self.attach_extra)
            except Exception:
                pass
        return True
