"""The exceptions tripwire raises into user code.

There is exactly one, and only :func:`tripwire.init` raises it::

    ValueError
     └── ConfigurationError   a wrong option: unknown name, bad type or value, malformed DSN

Everything else the SDK does is guarded: a failure is logged to the ``tripwire`` logger and counted,
never raised into the application.
"""

from __future__ import annotations

__all__ = ["ConfigurationError"]


class ConfigurationError(ValueError):
    """An option given to :func:`tripwire.init` is wrong; the message names the option."""
