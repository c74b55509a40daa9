"""``python -m tripwire_server`` is the ``tripwire`` command."""

import sys

from .cli import main

sys.exit(main())
