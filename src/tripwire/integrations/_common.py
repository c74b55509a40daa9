"""Small helpers the integrations share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType

from .. import _api
from .._types import Breadcrumb, Hint

TYPE_CHECKING = False  # typing's, without importing typing (3 ms): see _namedtuple.py
if TYPE_CHECKING:
    from typing import Any

    from .._client import Client


def in_sdk_thread() -> bool:
    """True on tripwire's own threads (worker, senders): what they do must not become breadcrumbs."""
    return threading.current_thread().name.startswith("tripwire")


def add_crumb(client: Client, crumb: Breadcrumb, hint: Hint | None = None) -> None:
    """Add a finished breadcrumb through ``before_breadcrumb`` (never raises)."""
    if client.options.max_breadcrumbs == 0:
        return
    try:
        _api._add_crumb(client, crumb, hint)
    except Exception:
        pass  # _add_crumb guards the user's hook; this guards against our own mistakes


def scrub_mapping(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with secret-looking keys masked, by the same rules as the rest of the event."""
    from .._scrub import scrub_mapping as scrub

    return scrub(data)


class Patches:
    """Methods an integration replaced on classes, and modules it waits for; ``undo()`` puts all back.

    A method is put back only if it is still ours: if another library wrapped it after us, we leave
    its wrapper in place (our function then passes through, since the integration is off).
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def replace(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``cls.name`` with ``make(original)``."""
        own = name in cls.__dict__
        # An inherited method (uvloop.Loop's come from its Cython base) is shadowed, then unshadowed.
        original = cls.__dict__[name] if own else getattr(cls, name)
        patched = make(original)
        patched.__wrapped__ = original
        setattr(cls, name, patched)

        def restore() -> None:
            if cls.__dict__.get(name) is patched:
                if own:
                    setattr(cls, name, original)
                else:
                    delattr(cls, name)

        self._undo.append(restore)

    def when_imported(self, module: str, callback: Callable[[ModuleType], None]) -> None:
        """Run ``callback(module)`` now or once ``module`` is imported (cancelled by ``undo``)."""
        from ._imports import when_imported

        self._undo.append(when_imported(module, callback))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()
