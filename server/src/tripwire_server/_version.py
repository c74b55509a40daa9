"""The version of the tripwire-server distribution (released apart from the ``tripwire`` SDK)."""

__version__ = "0.1.0.dev0"
