"""The environment of a subprocess that coverage should not measure.

``scripts/test`` runs the suite under ``coverage run`` with ``patch = ["subprocess"]``: every Python
process a test starts inherits ``COVERAGE_PROCESS_CONFIG`` and traces itself. That is wanted where
the process runs our code and ends normally (it writes its data file at exit). It is wasted where
the process runs only another vendor's SDK (sentry-sdk, bugsnag: nothing of ours to measure) or is
ended with SIGKILL (it never writes its data), and it distorts a test that measures a process's
memory or pace. The tracer roughly doubles such a process's CPU, on a 2-core machine that the
suite's workers share.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The variable through which coverage's subprocess patch reaches a child process.
COVERAGE_VARIABLE = "COVERAGE_PROCESS_CONFIG"


def without_coverage(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: this process's environment) that coverage does not act on."""
    copy = dict(os.environ if env is None else env)
    copy.pop(COVERAGE_VARIABLE, None)
    return copy
