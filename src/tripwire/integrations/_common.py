"""What the integrations share: the ``Integration`` base class (re-exported as
``tripwire.integrations.Integration``) and small helpers.

The integration modules import the base class from here, never from the package that loads them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from .. import _globals
from .._scrub import Scrubber
from .._types import Breadcrumb, Hint
from ._imports import when_imported

if TYPE_CHECKING:
    from .._client import Client


class Integration:
    """Base class: ``install()`` hooks into the process, ``uninstall()`` puts back what was there.

    Subclasses set :attr:`identifier` (the name used in ``disabled_integrations``). An instance is
    installed at most once at a time; hooks must stay harmless if someone else wrapped them after us
    (they then pass everything through instead of being unwrapped).
    """

    identifier: ClassVar[str] = ""

    def install(self) -> None:
        """Hook into the process. Called by :func:`tripwire.init`."""

    def uninstall(self) -> None:
        """Undo :meth:`install`. Called by :func:`tripwire.close` and on re-init."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identifier!r}>"


def in_sdk_thread() -> bool:
    """True on tripwire's own threads (worker, senders): what they do must not become breadcrumbs."""
    return threading.current_thread().name.startswith("tripwire")


def add_crumb(client: Client, crumb: Breadcrumb, hint: Hint | None = None) -> None:
    """Add a finished breadcrumb through ``before_breadcrumb`` (never raises)."""
    try:
        client.add_breadcrumb(crumb, hint)
    except Exception:
        pass  # add_breadcrumb guards the user's hook; this guards against our own mistakes


@functools.cache
def _default_scrubber() -> Scrubber:
    return Scrubber()  # made on first use: compiling the rules costs about 1 ms


def active_scrubber() -> Scrubber:
    """The active client's scrubber, or the default rules without one."""
    client = _globals.client
    return client.scrubber if client is not None else _default_scrubber()


def scrub_mapping(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with secret-looking keys masked, by the same rules as the rest of the event."""
    try:
        return active_scrubber().scrub_mapping(data)
    except Exception:
        return {}


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
        self._undo.append(when_imported(module, callback))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()
