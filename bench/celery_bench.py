"""Celery tasks/s with and without tripwire, side by side with sentry-sdk's Celery integration.

A real worker (solo pool, and prefork with one child) consumes from the Redis on 127.0.0.1. Each run
fills a fresh queue with ``--tasks`` small tasks between two "stamp" tasks before the worker starts,
then starts the worker: tasks/s is ``--tasks`` over the time between the two stamps, taken by the
worker itself, so start-up and publishing are not counted. Variants alternate (A B C, C B A, ...).

    .venv-bench/bin/python bench/celery_bench.py [--rounds 3] [--tasks 3000] [--no-callgrind]

With valgrind installed, a second table counts the instructions one task costs where the task runs
(what a prefork child does per task, without the pool's pipes): Celery's tracer for a trivial task
called in-process 500 and then 2,500 times under callgrind, the difference per task.
Deterministic, unlike CPU time on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import redis

from _harness import ROOT, alternating, machine_line, median, table, write_section

sys.path.insert(0, str(ROOT))  # _harness puts it there too; said here for the reader
from tests.support.sink import Sink

BROKER = "redis://127.0.0.1:6379/0"
VARIANTS = ["bare", "tripwire", "tripwire, Celery off", "sentry-sdk"]
POOLS = ["solo", "prefork"]


def one_run(variant: str, pool: str, tasks: int, dsn: str) -> tuple[float, float]:
    """(tasks per CPU second, tasks per wall-clock second) of one worker run."""
    queue = f"tripwire-bench-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "bench"), str(ROOT / "src"), str(ROOT)]),
        BENCH_VARIANT="bare",
        BENCH_QUEUE=queue,
        BENCH_DSN=dsn,
    )
    stamps = redis.Redis.from_url(BROKER)
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ["BENCH_QUEUE"] = queue
    from celery import Celery

    producer = Celery("tripwire_bench", broker=BROKER)
    producer.conf.update(task_default_queue=queue, task_ignore_result=True)
    first, last = f"{queue}:first", f"{queue}:last"
    with producer.connection_for_write() as conn:
        producer.send_task("stamp", args=[first], connection=conn)
        for n in range(tasks):
            producer.send_task("order", args=[n, "c-17"], connection=conn)
        producer.send_task("stamp", args=[last], connection=conn)
    env["BENCH_VARIANT"] = variant
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "_celery_worker",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        "1",
        "--queues",
        queue,
        "--hostname",
        f"{queue}@localhost",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]
    worker = subprocess.Popen(
        command, env=env, cwd=str(ROOT / "bench"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while stamps.get(last) is None:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"the {variant} worker did not finish: {worker.stderr}")
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    wall0, cpu0 = (float(v) for v in (stamps.get(first) or b"0 0").split())
    wall1, cpu1 = (float(v) for v in (stamps.get(last) or b"0 0").split())
    stamps.delete(first, last, queue)
    stamps.close()
    producer.close()
    return tasks / (cpu1 - cpu0), tasks / (wall1 - wall0)


TRACER = r"""
import os, sys
variant, n, dsn = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if variant.startswith("tripwire"):
    import tripwire

    disabled = ["celery"] if variant == "tripwire, Celery off" else []
    tripwire.init(dsn, send_client_reports=False, release="bench@1", disabled_integrations=disabled)
elif variant == "sentry-sdk":
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    sentry_sdk.init(dsn, integrations=[CeleryIntegration()], release="bench@1")
from celery import Celery
from celery.app.trace import build_tracer

app = Celery("tripwire_bench", broker="memory://")
app.conf.update(task_ignore_result=True)


@app.task(name="order")
def order(n, customer):
    return n * 2


app.finalize()
task = app.tasks["order"]
tracer = build_tracer("order", task, eager=False, propagate=False, app=app)
for i in range(n):
    task_id = f"{i:032x}"
    request = {
        "id": task_id, "task": "order", "retries": 0, "hostname": "bench@localhost", "is_eager": False,
        "delivery_info": {"routing_key": "bench", "exchange": "", "priority": 0, "redelivered": False},
    }
    tracer(task_id, (i, "c-17"), {}, request)
os._exit(0)
"""


def tracer_instructions(variant: str, dsn: str, small: int = 500, large: int = 2500) -> float:
    """Instructions (valgrind callgrind) Celery's tracer costs per task, in-process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env.update(PYTHONPATH=str(ROOT / "src"), PYTHONHASHSEED="0")
    counts = []
    for n in (small, large):
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", TRACER]
            + [variant, str(n), dsn],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=True,
        )
        match = re.search(r"Collected : (\d+)", out.stderr)
        if match is None:
            raise RuntimeError(f"no callgrind total for {variant}:\n{out.stderr[-2000:]}")
        counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--pools", default=",".join(POOLS))
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instructions per task")
    parser.add_argument("--callgrind-only", action="store_true", help="only the instructions per task")
    args = parser.parse_args()
    if args.callgrind_only:
        with Sink() as sink:
            print(instructions_table(sink.dsn))
        return
    rates: dict[tuple[str, str], list[float]] = {}
    walls: dict[tuple[str, str], list[float]] = {}
    with Sink() as sink:
        for pool in args.pools.split(","):
            for _, variant in alternating(VARIANTS, args.rounds):
                rate, wall = one_run(variant, pool, args.tasks, sink.dsn)
                rates.setdefault((pool, variant), []).append(rate)
                walls.setdefault((pool, variant), []).append(wall)
                print(f"{pool:8} {variant:11} {rate:8.0f} tasks/CPU-s {wall:8.0f} tasks/s", flush=True)
    rows = []
    for pool in args.pools.split(","):
        bare = median(rates[(pool, "bare")])
        for variant in VARIANTS:
            rate = median(rates[(pool, variant)])
            rows.append([pool, variant, rate, f"{rate / bare:.3f}x", median(walls[(pool, variant)])])
    body = (
        f"{machine_line()}; `bench/celery_bench.py --rounds {args.rounds} --tasks {args.tasks}`. "
        "A real worker (concurrency 1) against the Redis on 127.0.0.1; tasks per CPU second of the "
        "process that runs the tasks (the solo worker, or the prefork child) between the first and "
        "last task of a pre-filled queue, median of the rounds; tasks succeed (the happy path). Wall "
        "clock tasks/s is shown too, but the machine is shared (2 cores, several benchmarks and test "
        "suites at once), so only the CPU figure is compared. "
        "tripwire: default integrations (Celery's scope per task); sentry-sdk: its CeleryIntegration, "
        "no tracing. Target: tripwire >= 0.95x bare.\n\n"
        + table(["pool", "variant", "tasks/CPU-s", "vs bare", "tasks/s (wall, noisy)"], rows)
    )
    if not args.no_callgrind and shutil.which("valgrind"):
        body += "\n\n" + instructions_table(sink.dsn)
    write_section("Celery worker throughput (celery_bench.py)", body)
    print(body)


def instructions_table(dsn: str) -> str:
    counts = {variant: tracer_instructions(variant, dsn) for variant in VARIANTS}
    base = counts["bare"]
    rows = [[v, f"{n:,.0f}", f"{base / n:.3f}x", f"{n - base:+,.0f}"] for v, n in counts.items()]
    return (
        "Instructions per task where the task runs (valgrind callgrind: Celery's tracer for a trivial "
        "task called in-process, 2,500 minus 500 calls, per call; what a prefork child does per task "
        "besides reading the pool's pipe).\n\n"
        + table(["variant", "instructions/task", "bare / variant", "added"], rows)
    )


if __name__ == "__main__":
    main()
