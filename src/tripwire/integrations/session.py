"""One release-health session per process, for scripts, CLIs and workers (opt-in).

``tripwire.init(dsn, release="1.0", integrations=[ProcessSessionIntegration()])`` starts an
application session at init and ends it when the process exits (or at ``close()``): ``exited`` if all
went well, ``crashed`` if an unhandled exception ended it (the excepthook integration marks that),
with the number of errors captured meanwhile. Web services want request sessions instead (the ASGI
middleware counts those), so this is not on by default.
"""

from __future__ import annotations

import atexit
from typing import ClassVar

from .. import _globals, _scope
from .._sessions import end_application_session, start_application_session
from ._common import Integration

__all__ = ["ProcessSessionIntegration"]


class ProcessSessionIntegration(Integration):
    """Track the whole process as one application session (needs a release)."""

    identifier: ClassVar[str] = "process_session"

    def __init__(self) -> None:
        self._session: object | None = None

    def install(self) -> None:
        # The process-level scope: errors captured outside any request or job count on it.
        token = _scope._isolation.set(_scope._ROOT)
        try:
            self._session = start_application_session(_globals.client)
        finally:
            _scope._isolation.reset(token)
        if self._session is not None:
            atexit.register(self._at_exit)

    def uninstall(self) -> None:
        atexit.unregister(self._at_exit)
        self._end()

    def _end(self) -> bool:
        session, self._session = self._session, None
        if session is None or _scope._ROOT.session is not session:
            return False
        token = _scope._isolation.set(_scope._ROOT)
        try:
            return end_application_session(_globals.client)
        finally:
            _scope._isolation.reset(token)

    def _at_exit(self) -> None:
        client = _globals.client
        if self._end() and client is not None:
            client.flush(client.options.shutdown_timeout)
