"""Import and init cost: tripwire against sentry-sdk and bugsnag, each in a fresh interpreter.

For every variant a new ``python`` process runs the statement; inside it we time the import and the
init (CPU time with ``process_time`` and wall time with ``perf_counter``) and list the modules it added
to ``sys.modules``; outside we take the whole process's CPU time (``RUSAGE_CHILDREN``) and, in separate
runs, sum ``-X importtime``. CPU time is the headline because the machines are shared: wall time there
mostly measures the neighbours. Variants alternate (A B C ... C B A) and every figure is a median over
the rounds. Nothing leaves the machine: DSNs point at 127.0.0.1.

    .venv-bench/bin/python bench/import_bench.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field

from _harness import ROOT, alternating, machine_line, median, table, write_section

DSN = "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/1"

# Runs inside the child: time the import and the init, list what they imported.
PROBE = """
import sys, time, json
before = set(sys.modules)
c0, t0 = time.process_time(), time.perf_counter()
{imports}
c1, t1 = time.process_time(), time.perf_counter()
{init}
c2, t2 = time.process_time(), time.perf_counter()
added = sorted(set(sys.modules) - before)
print(json.dumps({{"import_ms": (c1 - c0) * 1e3, "init_ms": (c2 - c1) * 1e3,
                  "wall_ms": (t2 - t0) * 1e3, "modules": added}}))
"""


@dataclass
class Variant:
    label: str
    imports: str
    init: str = "pass"
    available: bool = True
    import_ms: list[float] = field(default_factory=list)
    init_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    process_cpu_ms: list[float] = field(default_factory=list)
    importtime_ms: list[float] = field(default_factory=list)
    integrations_importtime_ms: list[float] = field(default_factory=list)
    self_times: list[dict[str, float]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)

    @property
    def code(self) -> str:
        return PROBE.format(imports=self.imports, init=self.init)


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    clean["PYTHONPATH"] = str(ROOT / "src")
    # Any non-empty value (even "0") stops Python writing .pyc files, and then every run would
    # compile our sources again: measure with the bytecode cache, as an installed package runs.
    clean.pop("PYTHONDONTWRITEBYTECODE", None)
    return clean


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(code: str, *flags: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``code`` in a new interpreter; (its CPU time in ms, the finished process)."""
    before = _children_cpu()
    proc = subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, env=env(), cwd=ROOT
    )
    return (_children_cpu() - before) * 1e3, proc


def importtime_by_module(stderr: str) -> dict[str, float]:
    """Self time (ms) of each module imported, from ``-X importtime`` output."""
    result: dict[str, float] = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            fields = line.split(":", 1)[1].split("|")
            self_us, name = fields[0].strip(), fields[-1].strip()
            if self_us.isdigit():
                result[name] = int(self_us) / 1e3
    return result


def importtime_total(stderr: str, prefix: str = "") -> float:
    """Sum of the self times (ms) of the modules imported whose name starts with ``prefix``."""
    total = 0
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            fields = line.split(":", 1)[1].split("|")
            self_us, name = fields[0].strip(), fields[-1].strip()
            if self_us.isdigit() and name.startswith(prefix):
                total += int(self_us)
    return total / 1e3


INSTALL_PROBE = """
import time, tripwire, tripwire.integrations as integrations, tripwire._options as options
from tripwire.reporters.capture import CaptureReporter
opts = options.build_options(None, reporters=[CaptureReporter()])
t0 = time.process_time()
for _ in range(200):
    integrations.install(integrations.resolve(opts))
    integrations.uninstall()
print((time.process_time() - t0) / 200 * 1e6)
"""


def available(module: str) -> bool:
    _, proc = run(f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)")
    return proc.returncode == 0


def variants() -> list[Variant]:
    sentry = available("sentry_sdk")
    bugsnag = available("bugsnag")
    return [
        Variant("bare python", "pass"),
        Variant("import tripwire", "import tripwire"),
        Variant("tripwire + init(dsn), default integrations", "import tripwire", f"tripwire.init({DSN!r})"),
        Variant(
            "tripwire + init(dsn, default_integrations=False)",
            "import tripwire",
            f"tripwire.init({DSN!r}, default_integrations=False)",
        ),
        Variant("import sentry_sdk", "import sentry_sdk", available=sentry),
        Variant(
            "sentry_sdk + init(dsn), defaults",
            "import sentry_sdk",
            f"sentry_sdk.init({DSN!r})",
            available=sentry,
        ),
        Variant("import bugsnag", "import bugsnag", available=bugsnag),
        Variant(
            "bugsnag + configure()",
            "import bugsnag",
            "bugsnag.configure(api_key='0123456789abcdef0123456789abcdef', "
            "endpoint='http://127.0.0.1:9', session_endpoint='http://127.0.0.1:9')",
            available=bugsnag,
        ),
    ]


WATCH = [
    "logging",
    "typing",
    "asyncio",
    "http.client",
    "urllib.request",
    "ssl",
    "email",
    "json",
    "uuid",
    "importlib.metadata",
    "concurrent.futures",
    "httpx",
    "urllib3",
    "inspect",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    todo = [v for v in variants() if v.available]
    # Warm up: compile .pyc files so the first round is not different from the others.
    for variant in todo:
        run(variant.code)
    for _, variant in alternating(todo, args.rounds):
        cpu, proc = run(variant.code)
        if proc.returncode != 0:
            raise SystemExit(f"{variant.label} failed:\n{proc.stderr}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        variant.process_cpu_ms.append(cpu)
        variant.wall_ms.append(data["wall_ms"])
        variant.import_ms.append(data["import_ms"])
        variant.init_ms.append(data["init_ms"])
        variant.modules = data["modules"]
        _, traced = run(variant.code, "-X", "importtime")
        variant.importtime_ms.append(importtime_total(traced.stderr))
        variant.integrations_importtime_ms.append(importtime_total(traced.stderr, "tripwire.integrations"))
        variant.self_times.append(importtime_by_module(traced.stderr))

    bare = todo[0]
    bare_cpu = median(bare.process_cpu_ms)
    bare_importtime = median(bare.importtime_ms)
    rows = []
    for variant in todo[1:]:
        import_ms, init_ms = median(variant.import_ms), median(variant.init_ms)
        heavy = [m for m in WATCH if m in variant.modules]
        rows.append(
            (
                variant.label,
                round(import_ms, 1),
                round(init_ms, 1),
                round(import_ms + init_ms, 1),
                round(median(variant.wall_ms), 1),
                round(median(variant.process_cpu_ms) - bare_cpu, 1),
                round(median(variant.importtime_ms) - bare_importtime, 1),
                len(variant.modules),
                ", ".join(heavy) or "–",
            )
        )
    tw = next(v for v in todo if v.label.startswith("tripwire + init(dsn), default"))
    tw_total = median(tw.import_ms) + median(tw.init_ms)
    ratios = []
    for variant in todo:
        if variant.label.startswith(("sentry_sdk +", "bugsnag +")):
            total = median(variant.import_ms) + median(variant.init_ms)
            ratios.append(f"{variant.label}: {total / tw_total:.1f}x tripwire's import + init")
    tripwire_modules = [m for m in tw.modules if not m.startswith("tripwire")]
    installs = []
    for _ in range(5):
        _, proc = run(INSTALL_PROBE)
        installs.append(float(proc.stdout.strip()))
    integrations_import = median(tw.integrations_importtime_ms)
    bare_modules = set(bare.self_times[0]) if bare.self_times else set()
    names = {name for times in tw.self_times for name in times} - bare_modules
    largest = sorted(
        ((median(times.get(name, 0.0) for times in tw.self_times), name) for name in names), reverse=True
    )[:12]
    body = "\n\n".join(
        [
            f"`bench/import_bench.py --rounds {args.rounds}` — {machine_line()}. Each variant runs in a "
            "fresh interpreter; variants alternate; medians. *import* and *init* are CPU time "
            "(`process_time`, all threads) measured inside the process, *wall* the same span by "
            "`perf_counter`; *process CPU* is the whole interpreter's CPU time minus bare python's "
            f"({bare_cpu:.1f} ms); *-X importtime* is the sum of every module's self time minus bare "
            "python's (a wall-clock figure). The machine is shared with other jobs, so wall-clock "
            "figures are inflated and noisy; compare the CPU columns and the ratios. *modules* = "
            "entries added to sys.modules.",
            table(
                [
                    "variant",
                    "import CPU ms",
                    "init CPU ms",
                    "import + init CPU ms",
                    "import + init wall ms",
                    "process CPU ms (minus bare)",
                    "-X importtime ms",
                    "modules",
                    "heavy modules pulled in",
                ],
                rows,
            ),
            "Ratios (import + init, same run): " + "; ".join(ratios) if ratios else "",
            f"Target: tripwire import + init under 20 ms with default integrations — measured "
            f"{tw_total:.1f} ms of CPU. "
            f"The default integrations' own share: {integrations_import:.2f} ms to import "
            f"(-X importtime self time of `tripwire.integrations.*`) and {median(installs):.0f} µs of CPU to "
            "install and uninstall all seven (median of 5 × 200 in-process). tripwire imports "
            "`typing` and `logging` like any library (docs/internal/SPINE.md); the integrations for "
            "asyncio, http.client, httpx and thread pools wait for the app to import those modules "
            "(a post-import hook), so init imports none of them.",
            "Largest `-X importtime` self times in `import tripwire; tripwire.init(dsn)` (median ms, "
            "wall clock): " + ", ".join(f"`{name}` {ms:.1f}" for ms, name in largest),
            f"Other modules loaded by `import tripwire; tripwire.init(dsn)` ({len(tripwire_modules)}): "
            + ", ".join(f"`{m}`" for m in tripwire_modules),
        ]
    )
    write_section("Import and init cost", body)
    print(body)


if __name__ == "__main__":
    main()
