"""tripwire: error reporting for Python services, ASGI first.

>>> import tripwire
>>> tripwire.init("http://<key>@127.0.0.1:8000/1", release="1.0")  # doctest: +SKIP
>>> app = tripwire.asgi.TripwireMiddleware(app)  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._api import (
    add_breadcrumb,
    aflush,
    capture_exception,
    capture_message,
    close,
    flush,
    get_client,
    init,
    isolation_scope,
    last_event_id,
    new_scope,
    notify,
    set_context,
    set_extra,
    set_fingerprint,
    set_level,
    set_tag,
    set_tags,
    set_transaction,
    set_user,
    start_profiler,
    stats,
    stop_profiler,
)
from ._client import Client
from ._exceptions import ConfigurationError
from ._feedback import capture_feedback
from ._monitor import capture, capture_checkin, end_session, monitor, start_session
from ._scope_api import (
    Scope,
    add_event_processor,
    configure_scope,
    get_current_scope,
    get_global_scope,
    get_isolation_scope,
    push_scope,
)
from ._serverless import serverless
from ._trace_api import continue_trace, get_baggage, get_traceparent, start_span, trace
from ._version import __version__

if TYPE_CHECKING:
    from . import asgi as asgi
    from . import testing as testing
    from . import types as types

__all__ = [
    "Client",
    "ConfigurationError",
    "Scope",
    "__version__",
    "add_breadcrumb",
    "add_event_processor",
    "aflush",
    "capture",
    "capture_checkin",
    "capture_exception",
    "capture_feedback",
    "capture_message",
    "close",
    "configure_scope",
    "continue_trace",
    "end_session",
    "flush",
    "get_baggage",
    "get_client",
    "get_current_scope",
    "get_global_scope",
    "get_isolation_scope",
    "get_traceparent",
    "init",
    "isolation_scope",
    "last_event_id",
    "monitor",
    "new_scope",
    "notify",
    "push_scope",
    "serverless",
    "set_context",
    "set_extra",
    "set_fingerprint",
    "set_level",
    "set_tag",
    "set_tags",
    "set_transaction",
    "set_user",
    "start_profiler",
    "start_session",
    "start_span",
    "stats",
    "stop_profiler",
    "trace",
]

# Public submodules load on first use (``tripwire.asgi``, ``tripwire.testing``, ...), so that
# ``import tripwire`` pulls in nothing the application does not use.
_SUBMODULES = frozenset({"asgi", "integrations", "logging", "reporters", "testing", "types"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        # Also reached by init()'s ``from . import integrations``.
        __import__(f"{__name__}.{name}")
        return sys.modules[f"{__name__}.{name}"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
