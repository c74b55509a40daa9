"""The base class of integrations (re-exported as ``tripwire.integrations.Integration``).

Its own module, so that the integrations import it without importing the package that loads them.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["Integration"]


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
