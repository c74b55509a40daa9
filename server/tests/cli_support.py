"""The ``tripwire`` command as the tests call it: in this process, its output captured.

A command is ``tripwire_server.cli.main(argv)``: it parses, opens the store, prints and returns an
exit code, with no global state left behind, so the tests run it in-process. Each run as a process
of its own cost a Python start and the collector's imports (~0.5 s of CPU, more under coverage), and
some tests poll a command in a loop. ``test_cli.py`` still runs the real console script once, so the
command itself stays covered as users start it.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from typing import Any

from tripwire_server.cli import main


def tw(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``tripwire ARGS``; its exit code, stdout and stderr (exit 0 required unless not ``check``)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refuses a usage error by exiting (2)
            code = exc.code if isinstance(exc.code, int) else 1
    result = subprocess.CompletedProcess(["tripwire", *args], code, out.getvalue(), err.getvalue())
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def twj(*args: str) -> Any:
    """Run ``tripwire ARGS --json`` and return what it printed, parsed."""
    return json.loads(tw(*args, "--json").stdout)
