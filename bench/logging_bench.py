"""What the logging integrations cost per log call: tripwire against sentry-sdk and bugsnag.

Each variant runs in its own interpreter (both SDKs patch the logging module), alternating, and times
``logger.info(...)`` (a breadcrumb with default settings), ``logger.debug(...)`` (below every
threshold) and ``logger.error(...)`` (an event), in CPU time of the calling thread per call.
The logger has one NullHandler, so what is measured is logging itself plus the SDK.

    .venv-bench/bin/python bench/logging_bench.py [--rounds 5] [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

from _harness import ROOT, alternating, machine_line, median, table, write_section

DSN = "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1"

CHILD = """
import json, logging, sys, time
{setup}
log = logging.getLogger("bench.app")
log.setLevel(logging.DEBUG)
log.propagate = False
log.addHandler(logging.NullHandler())

def per_call(fn, n):
    t0 = time.thread_time()
    for i in range(n):
        fn("order %s shipped", i)
    return (time.thread_time() - t0) / n * 1e6

n = {n}
per_call(log.info, 1000)  # warm up
result = {{
    "info": per_call(log.info, n),
    "debug": per_call(log.debug, n),
    "error": per_call(log.error, max(n // 20, 200)),
}}
print(json.dumps(result))
"""

SETUPS = {
    "no SDK": "pass",
    "tripwire (default integrations)": (
        "import tripwire\n"
        "from tripwire.reporters.capture import CaptureReporter\n"
        "tripwire.init(reporters=[CaptureReporter()], repeat_limit=None)"  # every error record built
    ),
    "sentry-sdk (defaults)": (
        "import sentry_sdk\n"
        "from sentry_sdk.transport import Transport\n"
        "class Null(Transport):\n"
        "    def capture_envelope(self, envelope): pass\n"
        f"sentry_sdk.init({DSN!r}, transport=Null)"
    ),
    "bugsnag (BugsnagHandler + breadcrumb filter)": (
        "import bugsnag, bugsnag.handlers\n"
        "bugsnag.configure(api_key='0123456789abcdef0123456789abcdef', "
        "endpoint='http://127.0.0.1:9', session_endpoint='http://127.0.0.1:9')\n"
        "bugsnag.legacy.default_client.configuration.delivery = type("
        "'Null', (), {'deliver': lambda *a, **k: None, 'deliver_sessions': lambda *a, **k: None})()\n"
        "handler = bugsnag.handlers.BugsnagHandler()\n"
        "handler.setLevel(logging.ERROR)\n"
        "logging.getLogger('bench.app').addHandler(handler)\n"
        "logging.getLogger('bench.app').addFilter(handler.leave_breadcrumbs)"
    ),
}


@dataclass
class Variant:
    label: str
    setup: str
    results: dict[str, list[float]] = field(default_factory=dict)


def available(module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", code], env=env()).returncode == 0


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    clean["PYTHONPATH"] = str(ROOT / "src")
    return clean


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    wanted = {
        "sentry-sdk (defaults)": "sentry_sdk",
        "bugsnag (BugsnagHandler + breadcrumb filter)": "bugsnag",
    }
    variants = [
        Variant(label, setup)
        for label, setup in SETUPS.items()
        if label not in wanted or available(wanted[label])
    ]
    for _, variant in alternating(variants, args.rounds):
        code = CHILD.format(setup=variant.setup, n=args.n)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env(), cwd=ROOT, timeout=600
        )
        if proc.returncode != 0:
            raise SystemExit(f"{variant.label} failed:\n{proc.stderr}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        for key, value in data.items():
            variant.results.setdefault(key, []).append(value)

    bare = variants[0]
    rows = []
    for variant in variants:
        row: list[object] = [variant.label]
        for key in ("debug", "info", "error"):
            value = median(variant.results[key])
            added = value - median(bare.results[key])
            row += [round(value, 2), "–" if variant is bare else f"{added:+.2f}"]
        rows.append(row)
    body = "\n\n".join(
        [
            f"`bench/logging_bench.py --rounds {args.rounds} --n {args.n}` — {machine_line()}. CPU µs per "
            "log call on the calling thread (`thread_time`), medians of alternating runs, each SDK in "
            "its own interpreter, delivery replaced by a no-op where the SDK allows it (tripwire with "
            "`repeat_limit=None`: every error record becomes an event). *debug* is "
            "below every threshold, *info* becomes a breadcrumb (tripwire, sentry-sdk, bugsnag's "
            "filter), *error* an event "
            "(tripwire builds the event on its worker thread, which is not counted here; sentry-sdk and "
            "bugsnag build it on the calling thread).",
            table(
                [
                    "variant",
                    "debug µs",
                    "added",
                    "info µs",
                    "added",
                    "error µs",
                    "added",
                ],
                rows,
            ),
        ]
    )
    write_section("Logging integration cost per log call", body)
    print(body)


if __name__ == "__main__":
    main()
