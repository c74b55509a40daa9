"""Fixtures for the integration tests: a client that keeps events in memory, with integrations on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tripwire
from tripwire.reporters.capture import CapturedEvents, CaptureReporter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def start() -> Callable[..., CapturedEvents]:
    """``events = start(**options)``: tripwire.init with an in-memory reporter (integrations on)."""

    def start(**options: Any) -> CapturedEvents:
        events = CapturedEvents()
        options.setdefault("release", None)
        tripwire.init(reporters=[CaptureReporter(events)], **options)
        return events

    return start


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the tests' venv, the repo on the path)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=str(ROOT),
    )
