"""Build a distribution's wheel and read it, for the packaging tests of both distributions."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path


def build_wheel(project: Path, into: Path) -> zipfile.ZipFile:
    """Build the wheel of the pyproject in ``project`` with hatchling (the build backend) and open it."""
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", "wheel", "--directory", str(into)],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=60,
    )
    (wheel,) = into.glob("*.whl")
    return zipfile.ZipFile(wheel)


def wheel_metadata(wheel: zipfile.ZipFile, name: str) -> str:
    """The text of ``name`` (``METADATA``, ``entry_points.txt``) in the wheel's ``.dist-info``."""
    (path,) = [n for n in wheel.namelist() if n.endswith(".dist-info/" + name)]
    return wheel.read(path).decode()
