"""Assert on what your application reports, without a network.

>>> import tripwire.testing
>>> with tripwire.testing.capture_events() as events:  # doctest: +SKIP
...     tripwire.capture_message("hello")
>>> events[0]["logentry"]["message"]  # doctest: +SKIP
'hello'

Inside the block events are built by the background worker; on exit the block waits for them, so
the list is complete afterwards. Inside, use ``events.wait_for(n)``. The block waits only for the
worker to hand its events over, never for another reporter's delivery (a backend that is down costs
the block nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import _globals
from ._client import Client
from ._options import build_options
from .reporters.capture import CapturedEvents, CaptureReporter

__all__ = ["CaptureReporter", "CapturedEvents", "capture_events"]


@contextmanager
def capture_events(
    flush_timeout: float = 5.0, *, transactions: bool = False, **options: Any
) -> Iterator[CapturedEvents]:
    """Collect every event sent while the block runs, in a list.

    Performance transactions are always in ``events.transactions``; with ``transactions=True`` they
    are in the list too (``event["type"] == "transaction"``).

    With an active client, a capturing reporter is added to it for the duration of the block (the
    other reporters keep working). Without one, a temporary client with only the capturing reporter
    is installed, built from ``options`` (e.g. ``release=...``), and removed afterwards.
    """
    events = CapturedEvents(transactions=transactions)
    reporter = CaptureReporter(events)
    client = _globals.client
    if client is None:
        temporary = Client(build_options(None, **options), reporters=[reporter])
        _globals.client = temporary
        try:
            yield events
        finally:
            temporary.process_pending(flush_timeout)
            temporary.close(0)
            if _globals.client is temporary:
                _globals.client = None
        return
    reporter.bind(client.stats)
    client.reporters = (*client.reporters, reporter)
    try:
        yield events
    finally:
        # The capturing reporter keeps what it is handed at once: once the worker has handed over
        # everything, the list is complete. The client's other reporters deliver in their own time.
        client.process_pending(flush_timeout)
        client.reporters = tuple(r for r in client.reporters if r is not reporter)
