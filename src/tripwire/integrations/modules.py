"""sentry-sdk's ``ModulesIntegration`` and ``ArgvIntegration``, under their names.

tripwire has both behaviours as options (``attach_modules=True``; ``ContextIntegration(argv=True)``),
off by default since the module list and the command line can be large or hold secrets. A sentry-sdk
configuration that names these integrations (``integrations=[ModulesIntegration()]``,
``disabled_integrations=["modules", "argv"]``) works as it is: passing one turns that behaviour on.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from .. import _scope
from .._types import Event, Hint
from ._common import Integration

__all__ = ["ArgvIntegration", "ModulesIntegration"]


def _add_modules(event: Event, hint: Hint) -> Event:
    if "modules" not in event:
        # On the worker, where the event builder (and so this function) is already loaded.
        from .._event_builder import installed_modules

        event["modules"] = dict(installed_modules())
    return event


class ModulesIntegration(Integration):
    """Attach the installed distributions and their versions (``modules``) to every event."""

    identifier: ClassVar[str] = "modules"

    def install(self) -> None:
        _scope.add_global_processor(_add_modules)

    def uninstall(self) -> None:
        _scope.remove_global_processor(_add_modules)


class ArgvIntegration(Integration):
    """Attach ``sys.argv`` (as ``extra["sys.argv"]``) to every event."""

    identifier: ClassVar[str] = "argv"

    def __init__(self) -> None:
        self._argv: list[str] | None = None

    def install(self) -> None:
        root = _scope._ROOT
        self._argv = list(sys.argv)
        root.data = root.data.with_extra("sys.argv", self._argv)

    def uninstall(self) -> None:
        argv, self._argv = self._argv, None
        root = _scope._ROOT
        if argv is not None and root.data.extras.get("sys.argv") is argv:
            extras: Any = {k: v for k, v in root.data.extras.items() if k != "sys.argv"}
            root.data = _scope.replace_field(root.data, extras=extras)
