"""The official JavaScript SDKs as test clients: npm packages pinned in server/tests/js (package-lock.json),
bundles built with esbuild, pages served from loopback for headless Chromium."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).parent / "js"
#: Real JS SDK events (as sent, before the collector's derived fields), for the grouping tests.
#: Regenerate with TRIPWIRE_RECORD_JS_FIXTURES=1 and the JS tests.
FIXTURES = Path(__file__).parent / "fixtures" / "js_events.json"
_DERIVED = ("grouping", "title", "culprit", "received")
ESBUILD = JS_DIR / "node_modules" / ".bin" / "esbuild"


def npm_ci() -> None:
    """Install the pinned packages (once; ``scripts/test`` and ``.ci/run`` do it up front)."""
    if not (JS_DIR / "node_modules" / "@sentry" / "node").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=600)


def node(script: str, *args: str) -> str:
    """Run a script of server/tests/js with Node; its last line of output."""
    npm_ci()
    out = subprocess.run(
        ["node", str(JS_DIR / script), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def esbuild(entry: str, out: Path, *flags: str) -> None:
    npm_ci()
    subprocess.run(
        [str(ESBUILD), str(JS_DIR / entry), f"--outfile={out}", "--log-level=warning", *flags],
        cwd=JS_DIR,
        check=True,
        timeout=120,
    )


@contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (pages must come from an http origin); yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll: shutdown() waits up to one interval for the serving loop (default 0.5 s).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def record_fixture(name: str, event: dict[str, Any]) -> None:
    """Keep ``event`` (stored data of a real SDK event) as fixture ``name`` when recording."""
    if not os.environ.get("TRIPWIRE_RECORD_JS_FIXTURES"):
        return
    fixtures = json.loads(FIXTURES.read_text()) if FIXTURES.exists() else {}
    fixtures[name] = {k: v for k, v in event.items() if k not in _DERIVED}
    FIXTURES.write_text(json.dumps(fixtures, indent=1, sort_keys=True) + "\n")
