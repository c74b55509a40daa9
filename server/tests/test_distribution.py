"""The ``tripwire-server`` distribution: the collector with its dashboard files, the ``tripwire``
command, a dependency on the SDK, and a version of its own."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.version import Version

import tripwire
import tripwire_server
from tests.support.wheels import build_wheel, wheel_metadata
from tripwire_server._version import __version__

SERVER = Path(__file__).resolve().parents[1]
PACKAGE = Path(tripwire_server.__file__).parent


def test_the_server_wheel_holds_the_collector_its_dashboard_files_and_the_tripwire_command(
    tmp_path: Path,
) -> None:
    """``pip install tripwire-server`` gets every template and static file, the command and the SDK."""
    wheel = build_wheel(SERVER, tmp_path)
    names = set(wheel.namelist())
    assert {n.split("/")[0] for n in names} == {"tripwire_server", f"tripwire_server-{__version__}.dist-info"}
    web = {
        f"tripwire_server/{p.relative_to(PACKAGE).as_posix()}"
        for folder in ("web/templates", "web/static")
        for p in (PACKAGE / folder).rglob("*")
        if p.is_file()
    }
    assert len(web) > 20 and web <= names
    assert "tripwire_server/store/migrations.py" in names and "tripwire_server/py.typed" in names
    assert not [n for n in names if "/tests/" in n or n.startswith("tripwire/")]
    entry_points = wheel_metadata(wheel, "entry_points.txt")
    assert "[console_scripts]\ntripwire = tripwire_server.cli:main" in entry_points
    fields = wheel_metadata(wheel, "METADATA").splitlines()
    assert "Name: tripwire-server" in fields and f"Version: {__version__}" in fields
    assert any(f.startswith("Requires-Dist: tripwire>=") for f in fields)


def test_both_distributions_have_a_version_and_the_installed_ones_match_the_source() -> None:
    """tripwire and tripwire-server each carry a valid version, the one pip recorded at install."""
    assert Version(tripwire.__version__) and Version(__version__)
    assert metadata.version("tripwire") == tripwire.__version__
    assert metadata.version("tripwire-server") == __version__
    (script,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "tripwire"]
    assert script.value == "tripwire_server.cli:main" and script.dist is not None
    assert script.dist.name == "tripwire-server"
