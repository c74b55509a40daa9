"""Shared fixtures. Each test starts with no active client and an empty process scope."""

from __future__ import annotations

import gc
import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import tripwire._globals

# httpx builds a TLS context for every client it makes, also for plain-HTTP ones and for each
# module-level ``httpx.get()``: from a CA bundle file (its default, or SSL_CERT_FILE) that is ~20 ms
# of CPU parsing the whole bundle, and the suite makes over a thousand (25 s of CPU per run). From a
# hashed CA directory (SSL_CERT_DIR, which OpenSSL reads one certificate at a time, on demand) it is
# 0.2 ms. So the tests' processes trust the system's CA directory (the same certificates) instead
# of a bundle file. Every test talks to 127.0.0.1; the HTTPS tests bring their own CA.
_SYSTEM_CA_DIR = "/etc/ssl/certs"
if os.path.isdir(_SYSTEM_CA_DIR):
    os.environ.pop("SSL_CERT_FILE", None)
    os.environ["SSL_CERT_DIR"] = _SYSTEM_CA_DIR


@pytest.fixture(autouse=True)
def _reset_tripwire() -> Iterator[None]:
    tripwire._globals.reset()
    yield
    tripwire._globals.reset()


def pytest_collection_finish(session: pytest.Session) -> None:
    # After collection a worker holds ~250k long-lived objects (modules, test items, hypothesis
    # strategies) that every full garbage collection traversed again: on tests/ alone, ~12 full
    # collections per worker took 6.5 s of CPU in all. Frozen, collections skip them: 3.0 s.
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-xdist tells tests apart by node id: of several tests sharing one, it runs one and the
    # rest silently never (schemathesis gives every operation's test its function's node id unless a
    # parametrized fixture adds to it: 49 of the 50 API operations went unfuzzed so).
    shared = [nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1]
    if shared:
        raise pytest.UsageError(f"tests that share a node id (under xdist only one would run): {shared}")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Hand out the slow tests first: a 30-60 s test started last would keep one worker busy
        # long after the others ran out of work. (Every worker collects the same order, which is
        # the order the scheduler below hands out.) Only under xdist: in one process this would
        # split a module's tests around its module fixtures.
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # pytest-xdist is in the dev extra; without it everything runs in one process
    pass
else:
    # A fixture wider than one test but narrower than the run: under xdist every worker that gets a
    # test of the module sets it up again, so such a module's tests stay on one worker.
    _SHARED_FIXTURE = re.compile(r"""scope\s*=\s*["'](?:module|class|package)["']""")
    # The session's headless Chromium (server/tests/web/conftest.py): one group for all the modules
    # that drive it, so one browser starts for the run rather than one per worker (seconds and
    # hundreds of MB each on a 2-core machine).
    # A module asks for it as ``chromium`` or imports test_browser's ``browser`` fixture.
    _CHROMIUM = re.compile(r"\(chromium\b|from \.test_browser import .*\bbrowser\b")

    # The tests that push a real `tripwire serve` to its limits (950 MiB of gzip bombs, the load
    # bench, attack floods) need most of the machine for a while and measure time and memory, so
    # they run one after another on one worker, never side by side (three at once all passed
    # pytest-timeout's 120 s). The kill -9 loops measure neither: they are a unit of their own, on
    # another worker, so the two long sequences overlap instead of adding up (108 s on one worker).
    _HEAVY = {
        f"server/tests/{name}.py": unit
        for name, unit in (
            ("test_load_smoke", "heavy"),
            ("test_ingest_memory", "heavy"),
            ("test_durability", "kill-9"),
        )
    }
    # Of test_attachment_budget.py only the gzip bombs are heavy: its 25 other tests (small
    # envelopes, ~8 s together) go to any worker instead of lengthening the heavy unit.
    _HEAVY_TESTS = {
        "server/tests/test_attachment_budget.py::"
        "test_gzip_bombed_attachments_neither_fill_the_disk_nor_the_digests_memory": "heavy",
    }

    class _SharedFixtureScheduling(LoadScopeScheduling):
        """Tests go to workers one by one (like ``--dist load``), except the tests of a module with a
        module-scoped fixture of its own (one unit per module), the tests that drive Chromium (one
        unit) and the heavy modules and tests above (two units). The scheduler sees only node ids, so it reads
        each test module's source; a module-scoped fixture of a conftest.py is not seen (there is
        none)."""

        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            # Keep the collection order (slow tests first) instead of the biggest units first.
            config.option.loadscopereorder = False
            self._units: dict[str, str | None] = {}

        def _unit_of_module(self, path: str) -> str | None:
            if path not in self._units:
                try:
                    source = (self.config.rootpath / path).read_text(encoding="utf-8")
                except OSError:
                    source = ""
                unit = None
                if path in _HEAVY:
                    unit = _HEAVY[path]
                elif _CHROMIUM.search(source):
                    unit = "chromium"
                elif _SHARED_FIXTURE.search(source):
                    unit = path
                self._units[path] = unit
            return self._units[path]

        def _split_scope(self, nodeid: str) -> str:
            return _HEAVY_TESTS.get(nodeid) or self._unit_of_module(nodeid.split("::", 1)[0]) or nodeid

    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling:
        return _SharedFixtureScheduling(config, log)
