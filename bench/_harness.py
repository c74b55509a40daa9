"""Shared helpers for the benchmarks: medians, A/B alternation, and writing RESULTS.md sections."""

from __future__ import annotations

import fcntl
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
T = TypeVar("T")

# Benchmarks may use the test sink (tests/support/sink.py).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def alternating(variants: Sequence[T], rounds: int) -> Iterable[tuple[int, T]]:
    """Every variant once per round, order reversed on every other round (A B C, C B A, ...)."""
    for r in range(rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for variant in order:
            yield r, variant


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_line() -> str:
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"{platform.machine()}, {time.strftime('%Y-%m-%d')}"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of bench/RESULTS.md, under a file lock."""
    RESULTS.touch(exist_ok=True)
    with open(RESULTS, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        text = fh.read() or "# Benchmark results\n\nWritten by the scripts in bench/; see bench/README.md.\n"
        section = f"## {title}\n\n{body.strip()}\n"
        pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(text):
            text = pattern.sub(lambda _m: section + "\n", text, count=1)
        else:
            text = text.rstrip() + "\n\n" + section
        fh.seek(0)
        fh.truncate()
        fh.write(text.rstrip() + "\n")
