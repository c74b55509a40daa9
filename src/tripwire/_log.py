"""tripwire's own diagnostic logger, ``tripwire``: a plain :class:`logging.Logger`.

The SDK logs only when something went wrong (a hook raised, a delivery failed) or with ``debug=True``.
The logging integration never turns records of this logger (or its children) into breadcrumbs or
events, so the SDK's own trouble cannot feed back into what it reports.
"""

from __future__ import annotations

import logging

__all__ = ["NAME", "logger"]

NAME = "tripwire"

#: Use like any logger: ``logger.warning("tripwire: ...", x)``.
logger = logging.getLogger(NAME)
