"""A real Celery prefork worker (Redis broker on 127.0.0.1) whose tasks fail and log the failure.

The pool process logs the error (tripwire reports it), then pickles the exception to the worker's
main process. If tripwire had left something unpicklable on it, the parent would get a
``MaybeEncodingError`` instead, log that, and tripwire would report a second, misleading event.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import redis

import tripwire
from tests.integrations.conftest import run_python
from tests.support.celery_app import BROKER, PaymentDeclined, make_app
from tests.support.figures import record
from tests.support.sink import Answer, Received, Sink

ROOT = Path(__file__).resolve().parents[2]


def _delete_queue(name: str) -> None:
    client = redis.Redis.from_url(BROKER)
    client.delete(name, *client.keys(f"{name}*"))
    client.close()


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"tripwire-test-{uuid.uuid4().hex}"
    yield name
    _delete_queue(name)


def _start_worker(
    queue: str,
    dsn: str,
    *options: str,
    pool: str = "prefork",
    concurrency: int = 1,
    integration: str = "",
    release: str = "",
    traces: str = "",
    client_reports: bool = False,
    log: IO[str] | None = None,
) -> subprocess.Popen[str]:
    """``log``: where its output goes (default: pipes, which :func:`_stop` reads at the end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        TRIPWIRE_TEST_DSN=dsn,
        TRIPWIRE_TEST_QUEUE=queue,
        TRIPWIRE_TEST_CELERY_OPTIONS=integration,
        TRIPWIRE_TEST_RELEASE=release,
        TRIPWIRE_TEST_TRACES=traces,
        TRIPWIRE_TEST_CLIENT_REPORTS="1" if client_reports else "",
    )
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.support.celery_worker",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--queues",
        queue,
        "--hostname",
        f"{queue}@localhost",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
        *options,
    ]
    output: IO[str] | int = subprocess.PIPE if log is None else log
    return subprocess.Popen(command, env=env, cwd=str(ROOT), stdout=output, stderr=output, text=True)


def _stop(worker: subprocess.Popen[str]) -> str:
    """Warm shutdown (SIGTERM), as a deploy does; the worker must end by itself. Its stderr."""
    worker.send_signal(signal.SIGTERM)
    try:
        # A deadline for a hang, not a wait: a warm shutdown on a loaded 2-core machine took over 20 s.
        _, stderr = worker.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        _, stderr = worker.communicate()
        pytest.fail(f"the Celery worker did not stop on SIGTERM:\n{stderr}")
    return stderr or ""


@dataclass
class SharedWorker:
    queue: str
    sink: Sink
    process: subprocess.Popen[str]
    #: How many requests the sink held when the last test that used the worker was done with it.
    settled: int = 0

    def check_nothing_came_late(self, since: str) -> None:
        """Fail if anything arrived after the last test took what it expected (its own late sends);
        empty the sink either way (one late send fails one test, not every one after it)."""
        late = list(self.sink.requests)[self.settled :]
        self.sink.clear()
        self.settled = 0
        assert not late, f"arrived {since}: {[r.items for r in late]}"


@pytest.fixture(scope="module")
def solo_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedWorker]:
    """One solo worker with no options, for the module's tests that need no other: starting and
    stopping a worker (2-3 s) was most of each such test. Its output goes to a file (a pipe nobody
    reads would fill up); it still ends by a warm shutdown, checked at the end."""
    name = f"tripwire-test-{uuid.uuid4().hex}"
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    with Sink() as sink, open(log_path, "w") as log:
        worker = _start_worker(name, sink.dsn, pool="solo", log=log)
        shared = SharedWorker(name, sink, worker)
        try:
            yield shared
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                pytest.fail(f"the Celery worker did not stop on SIGTERM:\n{log_path.read_text()}")
            _delete_queue(name)
        shared.check_nothing_came_late("from the shared worker after its last test, up to its shutdown")


@contextmanager
def _worker(request: pytest.FixtureRequest, pool: str, integration: str = "") -> Iterator[tuple[str, Sink]]:
    """(queue, sink) of a running worker of ``pool`` (CeleryIntegration options: ``integration``),
    until the block ends.

    prefork, or integration options: a worker of the test's own, stopped (warm shutdown) at the end
    of the block. solo without options: the module's shared worker, its sink emptied first, so the
    test sees only what arrives in its time; whatever arrives after a test is done with the worker
    fails the next one (or the module's end).
    """
    if pool != "solo" or integration:
        queue: str = request.getfixturevalue("queue")
        sink: Sink = request.getfixturevalue("sink")
        worker = _start_worker(queue, sink.dsn, pool=pool, integration=integration)
        try:
            yield queue, sink
        finally:
            _stop(worker)
        return
    shared: SharedWorker = request.getfixturevalue("solo_worker")
    assert shared.process.poll() is None, "the shared Celery worker has ended"
    shared.check_nothing_came_late("after the previous test that used the shared worker")
    yield shared.queue, shared.sink
    # What the warm shutdown's flush guaranteed a worker of the test's own: everything the worker
    # captured has arrived. A failing task sent last is captured last, and the worker's one sender
    # delivers events in order: once its event is in, so is every earlier one. Then it is dropped.
    app = make_app(shared.queue)
    marker = app.send_task("charge", args=[0])
    marker.get(timeout=30, propagate=False)
    app.close()

    def is_marker(received: Received) -> bool:
        return any(
            json.loads(payload).get("contexts", {}).get("celery", {}).get("task_id") == marker.id
            for header, payload in received.items
            if header.get("type") == "event"
        )

    assert shared.sink.wait_until(lambda: any(is_marker(r) for r in shared.sink.requests), 10)
    shared.sink.discard(is_marker)
    shared.settled = len(shared.sink.requests)


@pytest.mark.slow
def test_a_failed_task_reaches_the_parent_as_itself_and_is_reported_once(sink: Sink, queue: str) -> None:
    """The parent gets the task's real exception (no MaybeEncodingError) and tripwire sends one event each."""
    app = make_app(queue)
    worker = _start_worker(queue, sink.dsn)
    try:
        results = [app.send_task("charge", args=[n]) for n in (2, 3)]
        errors = [result.get(timeout=30, propagate=False) for result in results]
        assert sink.wait_until(lambda: len(sink.events) >= 2, 10)
    finally:
        stderr = _stop(worker)
    # The main process wrote the outcome last: read it again from the backend.
    final = [app.AsyncResult(result.id).result for result in results]
    for error in (errors, final):
        assert [type(e) for e in error] == [ValueError, PaymentDeclined], stderr
        assert str(error[0]) == "order 2 is empty"
        assert vars(error[1]) == {"order": 3, "reason": "card expired"}
    assert "MaybeEncodingError" not in stderr
    # The main process delivers what it still had at exit: nothing more may have come.
    reported = [e["exception"]["values"][-1] for e in sink.events]
    assert sorted(v["type"] for v in reported) == ["PaymentDeclined", "ValueError"]
    # Reported by the Celery integration before Celery logged it: the log record was not a second event.
    assert {v["mechanism"]["type"] for v in reported} == {"celery"}
    app.close()


@pytest.mark.slow
@pytest.mark.reliability
def test_a_pool_child_that_ends_right_after_its_task_still_delivers(sink: Sink, queue: str) -> None:
    """--max-tasks-per-child 1: each pool child ends (os._exit) right after logging; every event arrives.

    billiard sleeps 1 s between telling Celery that the child ends and its ``os._exit``, time
    enough for an unflushed event to be written to the socket; so the backend answers after 1.5 s
    and counts an event only if its child still waits for that answer. A child that ends without
    flushing (by 1 s) has gone; one that flushes waits up to shutdown_timeout (2 s) for it.
    Four children for the four tasks: with one, each replacement waits for the pool's maintenance
    timer (5 s in Celery's AsynPool), 15 s of the test's 17 s; each child still runs one task and ends.
    """
    sink.answer = Answer(delay=1.5, only_if_awaited=True)
    app = make_app(queue)
    worker = _start_worker(queue, sink.dsn, "--max-tasks-per-child", "1", concurrency=4)
    try:
        results = [app.send_task("charge", args=[n]) for n in range(2, 6)]
        for result in results:
            result.get(timeout=30, propagate=False)
        arrived = sink.wait_until(lambda: len(sink.events) >= 4, 10)
    finally:
        stderr = _stop(worker)
    assert arrived, f"{len(sink.events)} of 4 events arrived, {len(sink.abandoned)} abandoned\n{stderr}"
    values = sorted(e["exception"]["values"][-1]["value"] for e in sink.events)
    assert len(values) == 4 and len(set(values)) == 4
    # Each task failed in a pool child of its own (Celery logs the failure under the child's name).
    children = re.findall(r"ERROR/(ForkPoolWorker-\d+)\] Task charge\[", stderr)
    assert len(children) == 4 and len(set(children)) == 4, stderr
    record(
        "fork-shutdown",
        "Celery prefork children recycled after every task (--max-tasks-per-child 1)",
        "4 of 4 delivered",
        "each child logs the failure and ends with os._exit; backend answers after 1.5 s",
    )
    app.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def _wait_results(results: list[Any]) -> None:
    for result in results:
        result.get(timeout=30, propagate=False)


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_failed_task_is_reported_with_its_name_id_queue_and_scrubbed_arguments(
    request: pytest.FixtureRequest, pool: str
) -> None:
    """One event per failure: task name as transaction, contexts.celery, args in extra with the
    password masked and a long value trimmed, the task's own tag and user; the task still fails."""
    with _worker(request, pool) as (queue, sink):
        app = make_app(queue)
        result = app.send_task(
            "refund", args=[5], kwargs={"note": "x" * 5000, "password": "hunter2", "tag": "damaged"}
        )
        error = result.get(timeout=30, propagate=False)
        assert sink.wait_until(lambda: len(sink.events) >= 1, 10)
    assert type(error) is LookupError and str(error) == "no payment for order 5"
    assert result.state == "FAILURE"
    [reported] = sink.events
    value = reported["exception"]["values"][-1]
    assert (value["type"], value["mechanism"]) == ("LookupError", {"type": "celery", "handled": False})
    assert reported["transaction"] == "refund"
    assert reported["contexts"]["celery"] == {
        "task_name": "refund",
        "task_id": result.id,
        "retries": 0,
        "queue": queue,
    }
    job = reported["extra"]["celery-job"]
    assert job["args"] == [5]
    assert job["kwargs"]["password"] != "hunter2"
    assert "hunter2" not in json.dumps(reported)
    assert 0 < len(job["kwargs"]["note"]) < 5000
    assert reported["tags"]["refund.reason"] == "damaged"
    assert reported["user"]["id"] == "customer-5"
    app.close()


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_what_a_task_sets_on_its_scope_does_not_reach_the_next_task(
    request: pytest.FixtureRequest, pool: str
) -> None:
    """Three tasks in one pool process; the middle one sets nothing: its event has no tag nor user."""
    with _worker(request, pool) as (queue, sink):
        app = make_app(queue)
        results = [
            app.send_task("refund", args=[1], kwargs={"tag": "late"}),
            app.send_task("refund", args=[2]),
            app.send_task("refund", args=[3], kwargs={"tag": "broken"}),
        ]
        _wait_results(results)
        assert sink.wait_until(lambda: len(sink.events) >= 3, 10)
    assert len(sink.events) == 3
    by_order = {e["extra"]["celery-job"]["args"][0]: e for e in sink.events}
    assert by_order[1]["tags"]["refund.reason"] == "late"
    assert by_order[3]["tags"]["refund.reason"] == "broken"
    assert "refund.reason" not in by_order[2].get("tags", {})
    assert "user" not in by_order[2]
    assert len({e["contexts"]["trace"]["trace_id"] for e in sink.events}) == 3
    app.close()


@pytest.mark.slow
def test_the_enqueuing_scope_travels_with_the_task(request: pytest.FixtureRequest) -> None:
    """The request that called send_task and the task that failed share a trace id; its tags and
    user reach the task's event."""
    with _worker(request, "solo") as (queue, sink):
        app = make_app(queue)
        tripwire.init(sink.dsn, send_client_reports=False, release=None)
        with tripwire.isolation_scope():
            tripwire.set_tag("http.route", "/orders/{oid}/refund")
            tripwire.set_user({"id": "admin-1", "email": "admin@example.com"})
            tripwire.capture_message("refund requested")
            result = app.send_task("refund", args=[8])
        result.get(timeout=30, propagate=False)
        assert sink.wait_until(lambda: len(sink.events) >= 2, 10)
    producer = next(e for e in sink.events if "logentry" in e)
    task = next(e for e in sink.events if "exception" in e)
    assert task["contexts"]["trace"]["trace_id"] == producer["contexts"]["trace"]["trace_id"]
    assert task["tags"]["http.route"] == "/orders/{oid}/refund"
    assert task["user"]["id"] == "admin-1"
    assert task["transaction"] == "refund"
    app.close()


@pytest.mark.slow
@pytest.mark.parametrize(("options", "expected"), [("", 1), ('{"report_retries": true}', 3)])
def test_a_retried_task_reports_only_its_final_failure_unless_asked(
    request: pytest.FixtureRequest, options: str, expected: int
) -> None:
    """autoretry_for, max_retries=2: one event (the third attempt's, retries=2) by default; with
    report_retries=True the two retries are reported too, as warnings."""
    with _worker(request, "solo", integration=options) as (queue, sink):
        app = make_app(queue)
        result = app.send_task("flaky", args=[4])
        error = result.get(timeout=30, propagate=False)
        assert sink.wait_until(lambda: len(sink.events) >= expected, 10)
    assert type(error) is ConnectionError
    # The worker has delivered everything by the end of the block (stopped, or past the marker).
    assert len(sink.events) == expected
    final = [e for e in sink.events if e["level"] == "error"]
    assert len(final) == 1
    assert final[0]["exception"]["values"][-1]["value"] == "warehouse unreachable (attempt 3)"
    assert final[0]["contexts"]["celery"]["retries"] == 2
    retries = [e for e in sink.events if e["level"] == "warning"]
    assert [e["tags"]["celery.retry"] for e in retries] == ["true"] * (expected - 1)
    app.close()


@pytest.mark.slow
def test_an_error_the_task_declares_expected_is_not_reported(request: pytest.FixtureRequest) -> None:
    """A task with throws=(PaymentDeclined,) fails as declared: no event; the next failure is reported.

    One solo worker runs both tasks in turn, and its one sender delivers in order: an event for the
    declined task would arrive before the charge's."""
    with _worker(request, "solo") as (queue, sink):
        app = make_app(queue)
        declined = app.send_task("decline", args=[3])
        assert type(declined.get(timeout=30, propagate=False)) is PaymentDeclined
        app.send_task("charge", args=[2]).get(timeout=30, propagate=False)
        assert sink.wait_until(lambda: len(sink.events) >= 1, 10)
    assert [e["exception"]["values"][-1]["type"] for e in sink.events] == ["ValueError"]
    app.close()


@pytest.mark.slow
def test_beat_scheduled_tasks_send_cron_checkins(request: pytest.FixtureRequest) -> None:
    """monitor_beat_tasks=True in the beat process: each run of a scheduled task sends in_progress,
    then ok or error with its duration, under the schedule entry's name and crontab."""
    from celery.beat import ScheduleEntry, Scheduler
    from celery.schedules import crontab

    from tripwire.integrations.celery import CeleryIntegration

    with _worker(request, "solo") as (queue, sink):
        app = make_app(queue)
        tripwire.init(
            sink.dsn,
            send_client_reports=False,
            release=None,
            integrations=[CeleryIntegration(monitor_beat_tasks=True)],
        )
        scheduler = Scheduler(app, lazy=True)
        entries = [
            ScheduleEntry(
                name="nightly-report", task="nightly-report", schedule=crontab(minute="0", hour="3"), app=app
            ),
            ScheduleEntry(
                name="hourly-report",
                task="nightly-report",
                schedule=crontab(minute="15"),
                kwargs={"fail": True},
                app=app,
            ),
        ]
        results = [scheduler.apply_entry(entry) for entry in entries]
        _wait_results([r for r in results if r is not None] or [])
        assert sink.wait_until(lambda: len(sink.items("check_in")) >= 4, 15)
    checkins = sink.items("check_in")
    by_slug: dict[str, list[dict[str, Any]]] = {}
    for checkin in checkins:
        by_slug.setdefault(checkin["monitor_slug"], []).append(checkin)
    assert [c["status"] for c in by_slug["nightly-report"]] == ["in_progress", "ok"]
    assert [c["status"] for c in by_slug["hourly-report"]] == ["in_progress", "error"]
    first, last = by_slug["nightly-report"]
    assert first["check_in_id"] == last["check_in_id"]
    assert last["duration"] >= 0.05
    assert first["monitor_config"]["schedule"] == {"type": "crontab", "value": "0 3 * * *"}
    assert by_slug["hourly-report"][0]["monitor_config"]["schedule"]["value"] == "15 * * * *"
    app.close()


def test_celery_imported_after_init_is_hooked_and_close_unhooks_it() -> None:
    """init() before the app imports Celery: its signals get tripwire's receivers and its tracer is
    wrapped on import; close() disconnects and unwraps them."""
    proc = run_python(
        """
        import tripwire
        tripwire.init("http://key@127.0.0.1:9/1")
        import celery.signals as s
        from celery.app import trace
        signals = (s.before_task_publish, s.after_task_publish, s.task_failure, s.task_retry)
        print([len(signal.receivers) for signal in signals], hasattr(trace.build_tracer, "__wrapped__"))
        tripwire.close()
        print([len(signal.receivers) for signal in signals], hasattr(trace.build_tracer, "__wrapped__"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[1, 1, 1, 1] True", "[0, 0, 0, 0] False"]


@pytest.mark.slow
def test_each_task_counts_as_a_release_health_session(sink: Sink, queue: str) -> None:
    """With a release, a prefork worker's tasks are counted like requests: two that succeeded are
    exited, the one that failed is crashed, delivered by the time the worker has stopped."""
    app = make_app(queue)
    worker = _start_worker(queue, sink.dsn, release="worker@1.0")
    try:
        results = [app.send_task("ship", args=[1]), app.send_task("charge", args=[2])]
        results.append(app.send_task("ship", args=[3]))
        _wait_results(results)
    finally:
        _stop(worker)
    totals: dict[str, int] = {}
    for item in sink.items("sessions"):
        assert item["attrs"]["release"] == "worker@1.0"
        for aggregate in item["aggregates"]:
            for key in ("exited", "errored", "crashed"):
                totals[key] = totals.get(key, 0) + int(aggregate.get(key, 0))
    assert totals == {"exited": 2, "errored": 0, "crashed": 1}
    app.close()


def _transactions(sink: Sink) -> list[dict[str, Any]]:
    return [item for item in sink.items("transaction") if isinstance(item, dict)]


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_task_sent_from_a_traced_request_continues_its_trace(sink: Sink, queue: str, pool: str) -> None:
    """A Flask request (waitress, traced) sends two tasks: its transaction has a queue.submit.celery
    span per task; each task execution is a queue.task.celery transaction of the same trace, child
    of its submit span, status ok / internal_error; the failing task's error is linked to it."""
    from flask import Flask

    from tests.wsgi.servers import request, waitress_server
    from tripwire.wsgi import TripwireMiddleware

    app = make_app(queue)
    tripwire.init(sink.dsn, send_client_reports=False, traces_sample_rate=1.0)
    web = Flask("enqueue")

    @web.route("/orders/<int:oid>/ship")
    def ship(oid: int) -> str:
        app.send_task("ship", args=[oid])
        app.send_task("charge", args=[2])
        return "queued"

    web.wsgi_app = TripwireMiddleware(web.wsgi_app)  # type: ignore[method-assign]
    worker = _start_worker(queue, sink.dsn, pool=pool, traces="1.0")
    try:
        with waitress_server(web) as address:
            assert request(address, "GET", "/orders/4/ship").body == b"queued"
        tripwire.flush(5)
        assert sink.wait_until(lambda: len(_transactions(sink)) >= 3 and len(sink.events) >= 1, 30)
    finally:
        stderr = _stop(worker)
    by_op: dict[str, list[dict[str, Any]]] = {}
    for txn in _transactions(sink):
        by_op.setdefault(txn["contexts"]["trace"]["op"], []).append(txn)
    [web_txn] = by_op["http.server"]
    assert web_txn["transaction"] == "/orders/<int:oid>/ship", stderr
    trace_id = web_txn["contexts"]["trace"]["trace_id"]
    submits = {s["description"]: s for s in web_txn["spans"] if s["op"] == "queue.submit.celery"}
    assert set(submits) == {"ship", "charge"}
    tasks = {t["transaction"]: t for t in by_op["queue.task.celery"]}
    assert set(tasks) == {"ship", "charge"}
    for name, txn in tasks.items():
        trace = txn["contexts"]["trace"]
        assert trace["trace_id"] == trace_id
        assert trace["parent_span_id"] == submits[name]["span_id"]
        assert txn["transaction_info"]["source"] == "task"
        assert trace["data"]["messaging.destination.name"] == queue
    assert tasks["ship"]["contexts"]["trace"]["status"] == "ok"
    assert tasks["charge"]["contexts"]["trace"]["status"] == "internal_error"
    [error] = sink.events
    assert error["contexts"]["trace"]["trace_id"] == trace_id
    assert error["contexts"]["trace"]["span_id"] == tasks["charge"]["contexts"]["trace"]["span_id"]
    app.close()


@pytest.mark.slow
def test_unsampled_tasks_send_no_transaction_and_are_counted(sink: Sink, queue: str) -> None:
    """traces_sample_rate=0 in the worker: the tasks run, no transaction is sent, and the worker's
    client report counts each one as sampled out."""
    app = make_app(queue)
    worker = _start_worker(queue, sink.dsn, pool="solo", traces="0.0", client_reports=True)
    try:
        results = [app.send_task("ship", args=[n]) for n in range(3)]
        assert [r.get(timeout=30) for r in results] == ["shipped 0", "shipped 1", "shipped 2"]
    finally:
        _stop(worker)
    assert _transactions(sink) == []
    discarded = [
        entry
        for report in sink.items("client_report")
        for entry in report.get("discarded_events", [])
        if entry["reason"] == "sample_rate" and entry["category"] == "transaction"
    ]
    assert sum(entry["quantity"] for entry in discarded) == 3
    app.close()
