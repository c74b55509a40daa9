"""The imports tripwire makes on first use rather than at ``import tripwire``.

``import tripwire; tripwire.init(dsn)`` runs in every process of the application, also in those that
never report anything, so it must stay cheap (under 20 ms of CPU with the default integrations,
measured by bench/import_bench.py). Everything the SDK needs for that is imported normally at the top
of its module, ``typing`` and ``logging`` included. What is deferred costs milliseconds to import and
is needed only later, or only by some processes:

* the **event builder** (``_event_builder``, with ``_budget``, ``json`` and ``platform``): imported by
  the worker thread with the first event, never on the caller's thread (see ``Client._process``; it
  is the one deferral outside this module, since the event builder uses this module itself);
* ``json`` (2 ms with what it imports): to copy an event for ``before_send``, on the worker;
* ``random`` (1.6 ms): only with ``sample_rate`` < 1;
* ``uuid`` (2 ms): only for application sessions (scripts, workers);
* ``socket`` (1 ms and more): only to find the default ``server_name`` where ``os.uname`` is missing;
* ``urllib.parse`` (1 ms and more): to decode percent-encoded query keys while scrubbing, and to split
  proxied URLs in the http.client integration;
* ``importlib.metadata`` (15 ms and more): only for a reporter backend that is not built in, and for
  the ``modules`` list of events (``attach_modules``), once;
* ``array`` and ``fnmatch`` (0.1 to 0.3 ms each, more on a busy machine: ``array`` is a shared library):
  ``array`` only when the worker serializes a value that is not a plain container, ``fnmatch`` only
  for the logger patterns given to ``ignore_logger()``.

The transport (``delivery.connections``) imports ``ssl``, ``http.client`` and ``urllib.request`` on
its sender thread, at the first delivery: see docs/delivery.md.

Each function imports its module the first time it runs; Python caches the module, so later calls
cost a dictionary lookup. This module imports nothing of tripwire's: every module can use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import Distribution, EntryPoint
    from urllib.parse import SplitResult


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON-compatible value."""
    import json

    return json.loads(json.dumps(value))


def random() -> float:
    """A random float in [0, 1)."""
    import random as random_module

    return random_module.random()


def uuid4() -> str:
    """A random UUID, as a string."""
    import uuid

    return str(uuid.uuid4())


def hostname() -> str:
    """This machine's host name ('' if it has none)."""
    import socket

    return socket.gethostname()


def unquote_plus(text: str) -> str:
    """``text`` with ``%xx`` escapes and ``+`` decoded, as in a query string."""
    from urllib.parse import unquote_plus as unquote

    return unquote(text)


def urlsplit(url: str) -> SplitResult:
    """``url`` split into scheme, netloc, path, query and fragment."""
    from urllib.parse import urlsplit as split

    return split(url)


def array_type() -> type:
    """``array.array``, for the serializer's check of containers."""
    from array import array

    return array


def fnmatchcase(name: str, pattern: str) -> bool:
    """Whether ``name`` matches the shell-style ``pattern`` (case-sensitive)."""
    from fnmatch import fnmatchcase as matches

    return matches(name, pattern)


def entry_points(group: str) -> Iterable[EntryPoint]:
    """The installed entry points of ``group``."""
    from importlib.metadata import entry_points as installed

    return installed(group=group)


def distributions() -> Iterable[Distribution]:
    """The installed distributions."""
    from importlib.metadata import distributions as installed

    return installed()
