"""The ``tripwire`` distribution is the SDK alone: its wheel holds no server code, no command and no
required dependency, and importing it never loads the collector (``tripwire_server``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import tripwire
from tests.support.wheels import build_wheel, wheel_metadata

ROOT = Path(__file__).resolve().parents[1]


def test_the_sdk_wheel_holds_only_the_sdk_with_no_command_and_no_required_dependency(tmp_path: Path) -> None:
    """``pip install tripwire`` gets the SDK package only: no collector, no console script, no dependency."""
    wheel = build_wheel(ROOT, tmp_path)
    names = wheel.namelist()
    assert {n.split("/")[0] for n in names} == {"tripwire", f"tripwire-{tripwire.__version__}.dist-info"}
    assert "tripwire/__init__.py" in names and "tripwire/py.typed" in names
    assert not [n for n in names if "collector" in n or "tripwire_server" in n or n.endswith(".html")]
    assert "console_scripts" not in wheel_metadata(wheel, "entry_points.txt")
    fields = wheel_metadata(wheel, "METADATA").splitlines()
    assert f"Version: {tripwire.__version__}" in fields
    assert [f for f in fields if f.startswith("Requires-Dist:") and "extra ==" not in f] == []


def test_importing_and_using_the_sdk_never_imports_the_server() -> None:
    """The public modules, an init and a capture load nothing of tripwire_server; no SDK source names it."""
    mentions = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "src" / "tripwire").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and any(
            (name or "").split(".")[0] == "tripwire_server"
            for name in [getattr(node, "module", None), *(a.name for a in node.names)]
        )
    ]
    assert mentions == []
    # The public modules (the integrations import third-party frameworks: the source check covers them).
    code = """
import sys
import tripwire, tripwire.asgi, tripwire.wsgi, tripwire.testing, tripwire.types, tripwire.logging
import tripwire.reporters.sentry, tripwire.reporters.bugsnag, tripwire.reporters.raygun
tripwire.init("http://key@127.0.0.1:9/1", shutdown_timeout=0)
try:
    1 / 0
except ZeroDivisionError:
    tripwire.capture_exception()
tripwire.close(0)
print(len([m for m in sys.modules if m.startswith("tripwire.")]))
print(sorted(m for m in sys.modules if m.split(".")[0] == "tripwire_server"))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded, server = done.stdout.split("\n")[-3:-1]
    assert int(loaded) > 20
    assert server == "[]"


def test_the_installed_sdk_reports_the_version_of_its_source() -> None:
    """The version pip records for tripwire is the one ``tripwire.__version__`` says."""
    assert tripwire.__version__ and metadata.version("tripwire") == tripwire.__version__
