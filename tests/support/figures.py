"""Figures that the reliability suites record for docs/reliability.md.

A test (or a benchmark) calls ``record("fuzzing", "envelopes tried against the parser", 5000)``.
When ``$TRIPWIRE_FIGURES`` names a file, each figure is appended to it as one JSON line; otherwise
nothing is written, so the suites cost nothing extra in an ordinary run. ``scripts/reliability``
runs the suites with it set and renders docs/reliability.md from those lines
(``scripts/reliability_report.py``).

Families (the sections of docs/reliability.md): see ``FAMILIES``.
"""

from __future__ import annotations

import json
import os
import threading

#: Section name -> one sentence on what the family proves. A figure of an unknown family fails.
FAMILIES = {
    "routes": "Every route of the collector refuses missing, forged and other users' credentials.",
    "fuzzing": "Hostile envelopes and API calls never produce a 500, a hang or unbounded memory.",
    "transport": "Faults at the SDK's transport never slow the app, and every event is explained.",
    "fork-shutdown": "Forks, shutdown during a flush and captures at odd moments never deadlock or crash.",
    "crash-safety": "kill -9 of the collector at random points: acknowledged is a subset of stored.",
    "attacks": "The attacks found in the hardening review, rerun against the fixed server, fail.",
    "load": "The collector at its maximum, and under an attack mix alongside normal traffic.",
}

_lock = threading.Lock()


def record(family: str, figure: str, value: object, note: str = "") -> None:
    """Append one figure (``value`` is printed as given: a number, or a short text with units)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown reliability family {family!r}; add it to FAMILIES")
    path = os.environ.get("TRIPWIRE_FIGURES")
    if not path:
        return
    line = json.dumps({"family": family, "figure": figure, "value": value, "note": note}, default=str)
    with _lock, open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
