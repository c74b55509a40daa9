"""``python -m tripwire.collector`` is the ``tripwire`` command."""

import sys

from .cli import main

sys.exit(main())
