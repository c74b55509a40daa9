"""tripwire's own diagnostic logger (``tripwire``), without importing :mod:`logging` up front.

``logging`` pulls in ``traceback``, ``linecache``, ``tokenize``, ``textwrap``, ``string`` and
``weakref``: about 6 ms of CPU, a third of what ``import tripwire; tripwire.init(dsn)`` used to cost, in
a process that may never log. The SDK logs only when something went wrong (a hook raised, a delivery
failed), so :data:`logger` imports ``logging`` on the first line actually logged. Apps that use
``logging`` (nearly all) see exactly the same ``tripwire`` logger as before: same name, same records,
same caller (``stacklevel`` skips this module's frame), configurable with ``logging`` as usual.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing typing (3 ms): see _namedtuple.py
if TYPE_CHECKING:
    from logging import Logger
    from typing import Any

__all__ = ["logger", "real_logger"]

NAME = "tripwire"


_real: Logger | None = None


def real_logger() -> Logger:
    """The ``tripwire`` :class:`logging.Logger` (imports ``logging`` if the app has not)."""
    # Cached: ``logging.getLogger`` takes logging's module lock on every call.
    global _real
    if _real is None:
        import logging

        _real = logging.getLogger(NAME)
    return _real


class _LazyLogger:
    """The few :class:`logging.Logger` methods the SDK calls, forwarded to the real logger."""

    __slots__ = ()

    name = NAME

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        _forward(real_logger().debug, msg, args, kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        _forward(real_logger().info, msg, args, kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        _forward(real_logger().warning, msg, args, kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        _forward(real_logger().error, msg, args, kwargs)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        _forward(real_logger().error, msg, args, {**kwargs, "exc_info": exc_info})

    def __repr__(self) -> str:
        return f"<lazy logger {NAME!r}>"


def _forward(method: Any, msg: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # The record's funcName/lineno must name the SDK code that logged, not this module: one frame
    # for _forward, one for the _LazyLogger method.
    kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2
    method(msg, *args, **kwargs)


#: Use like a :class:`logging.Logger`: ``logger.warning("tripwire: ...", x)``.
logger = _LazyLogger()
