"""A real RQ worker (the forking ``Worker`` and ``SimpleWorker``) against the Redis on 127.0.0.1.

Jobs are queued first, then the worker runs in burst mode and exits when the queue is empty: what
tripwire had not delivered by then is lost. The forking worker runs each job in a work horse that
ends with ``os._exit()``; the backend takes 0.3 s per event, so a horse that did not deliver loses it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.job import Job

import tripwire
from tests.integrations.conftest import run_python
from tests.support import rq_jobs
from tests.support.figures import record
from tests.support.rq_worker import BROKER
from tests.support.sink import Answer, Sink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


@pytest.fixture
def queue() -> Iterator[Queue]:
    connection = Redis.from_url(BROKER)
    named = Queue(f"tripwire-test-{uuid.uuid4().hex}", connection=connection)
    yield named
    named.empty()
    named.delete(delete_jobs=True)
    connection.close()


def _run_worker(queue: Queue, dsn: str, worker_class: str, options: str = "", traces: str = "") -> str:
    """Run the worker in burst mode until the queue is empty; its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        TRIPWIRE_TEST_DSN=dsn,
        TRIPWIRE_TEST_RQ_OPTIONS=options,
        TRIPWIRE_TEST_TRACES=traces,
    )
    command = [sys.executable, "-m", "tests.support.rq_worker", queue.name, worker_class]
    done = subprocess.run(command, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.slow
@pytest.mark.reliability
@pytest.mark.parametrize("worker_class", ["Worker", "SimpleWorker"])
def test_a_failed_job_is_reported_with_its_id_function_arguments_and_queue(
    sink: Sink, queue: Queue, worker_class: str
) -> None:
    """One event: function as transaction, contexts.rq, args in extra with the password masked, the
    job's own tag and user; the job still ends failed with its exception (forking: from the horse)."""
    sink.answer = Answer(delay=0.3)
    job = queue.enqueue(rq_jobs.refund, 5, note="x" * 5000, password="hunter2", tag="damaged", retry=None)
    stderr = _run_worker(queue, sink.dsn, worker_class)
    job = Job.fetch(job.id, connection=queue.connection)
    assert job.is_failed
    result = job.latest_result()
    assert result is not None
    assert "LookupError: no payment for order 5" in (result.exc_string or "")
    assert len(sink.events) == 1, stderr
    [reported] = sink.events
    value = reported["exception"]["values"][-1]
    assert (value["type"], value["mechanism"]) == ("LookupError", {"type": "rq", "handled": False})
    assert reported["transaction"] == "tests.support.rq_jobs.refund"
    assert reported["contexts"]["rq"]["job_id"] == job.id
    assert reported["contexts"]["rq"]["func"] == "tests.support.rq_jobs.refund"
    assert reported["contexts"]["rq"]["queue"] == queue.name
    extra = reported["extra"]["rq-job"]
    assert extra["args"] == [5]
    assert "hunter2" not in json.dumps(reported)
    assert 0 < len(extra["kwargs"]["note"]) < 5000
    assert reported["tags"]["refund.reason"] == "damaged"
    assert reported["user"]["id"] == "customer-5"
    if worker_class == "Worker":
        record(
            "fork-shutdown",
            "RQ work horse ending with os._exit() right after a failed job",
            "1 of 1 delivered",
            "the horse flushes before it ends; backend 0.3 s per event",
        )


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["Worker", "SimpleWorker"])
def test_what_a_job_sets_on_its_scope_does_not_reach_the_next_job(
    sink: Sink, queue: Queue, worker_class: str
) -> None:
    """Three failing jobs and a successful one: the middle failure has no tag nor user; the success
    sends nothing."""
    queue.enqueue(rq_jobs.refund, 1, tag="late")
    queue.enqueue(rq_jobs.refund, 2)
    ok = queue.enqueue(rq_jobs.ship, 9)
    queue.enqueue(rq_jobs.refund, 3, tag="broken")
    _run_worker(queue, sink.dsn, worker_class)
    assert Job.fetch(ok.id, connection=queue.connection).return_value() == "shipped 9"
    assert len(sink.events) == 3
    by_order = {e["extra"]["rq-job"]["args"][0]: e for e in sink.events}
    assert by_order[1]["tags"]["refund.reason"] == "late"
    assert by_order[3]["tags"]["refund.reason"] == "broken"
    assert "refund.reason" not in by_order[2].get("tags", {})
    assert "user" not in by_order[2]


@pytest.mark.slow
@pytest.mark.parametrize(("options", "expected"), [("", 1), ('{"report_retries": true}', 3)])
def test_a_retried_job_reports_only_its_final_failure_unless_asked(
    sink: Sink, queue: Queue, options: str, expected: int
) -> None:
    """Retry(max=2): one event, for the last attempt; with report_retries=True two warnings before it."""
    job = queue.enqueue(rq_jobs.flaky, 4, retry=Retry(max=2))
    _run_worker(queue, sink.dsn, "SimpleWorker", options)
    assert Job.fetch(job.id, connection=queue.connection).is_failed
    assert len(sink.events) == expected
    assert [e["level"] for e in sink.events].count("error") == 1
    final = next(e for e in sink.events if e["level"] == "error")
    assert final["contexts"]["rq"]["retries_left"] == 0
    assert [e["tags"].get("rq.retry") for e in sink.events if e["level"] == "warning"] == ["true"] * (
        expected - 1
    )


def test_rq_imported_after_init_is_patched_and_close_restores_it() -> None:
    """init() before the app imports RQ: the worker's methods are wrapped on import, restored by close()."""
    proc = run_python(
        """
        import tripwire
        tripwire.init("http://key@127.0.0.1:9/1")
        from rq.worker import BaseWorker as W
        print(hasattr(W.perform_job, "__wrapped__"), hasattr(W.handle_exception, "__wrapped__"))
        tripwire.close()
        print(hasattr(W.perform_job, "__wrapped__"), hasattr(W.handle_exception, "__wrapped__"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["True True", "False False"]


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["Worker", "SimpleWorker"])
def test_a_job_enqueued_in_a_traced_transaction_continues_its_trace(
    sink: Sink, queue: Queue, worker_class: str
) -> None:
    """Two jobs enqueued inside a sampled transaction: a queue.submit.rq span each; each job is a
    queue.task.rq transaction of the same trace, child of its submit span, status ok /
    internal_error; the failing job's error is linked to its transaction."""
    tripwire.init(sink.dsn, send_client_reports=False, traces_sample_rate=1.0)
    with tripwire.start_span(op="http.server", name="POST /orders/{oid}/ship") as outer:
        queue.enqueue(rq_jobs.ship, 4)
        queue.enqueue(rq_jobs.refund, 5, retry=None)
    tripwire.flush(5)
    stderr = _run_worker(queue, sink.dsn, worker_class, traces="1.0")
    assert sink.wait_until(lambda: len(sink.items("transaction")) >= 3, 10), stderr
    transactions = sink.items("transaction")
    [web] = [t for t in transactions if t["contexts"]["trace"]["op"] == "http.server"]
    trace_id = outer.trace_id
    submits = {s["description"]: s for s in web["spans"] if s["op"] == "queue.submit.rq"}
    assert set(submits) == {"tests.support.rq_jobs.ship", "tests.support.rq_jobs.refund"}
    jobs = {t["transaction"]: t for t in transactions if t["contexts"]["trace"]["op"] == "queue.task.rq"}
    assert set(jobs) == set(submits)
    for name, txn in jobs.items():
        assert txn["contexts"]["trace"]["trace_id"] == trace_id
        assert txn["contexts"]["trace"]["parent_span_id"] == submits[name]["span_id"]
        assert txn["contexts"]["trace"]["data"]["messaging.destination.name"] == queue.name
    assert jobs["tests.support.rq_jobs.ship"]["contexts"]["trace"]["status"] == "ok"
    failed = jobs["tests.support.rq_jobs.refund"]
    assert failed["contexts"]["trace"]["status"] == "internal_error"
    [error] = sink.events
    assert error["contexts"]["trace"]["trace_id"] == trace_id
    assert error["contexts"]["trace"]["span_id"] == failed["contexts"]["trace"]["span_id"]


@pytest.mark.slow
def test_untraced_jobs_send_no_transaction(sink: Sink, queue: Queue) -> None:
    """A worker without traces_sample_rate runs a job enqueued by a tracing producer (the trace is
    in the job's meta) and sends no transaction."""
    tripwire.init(sink.dsn, send_client_reports=False, traces_sample_rate=1.0)
    job = queue.enqueue(rq_jobs.ship, 1)
    assert "sentry-trace" in job.meta["_tripwire_trace"]
    _run_worker(queue, sink.dsn, "SimpleWorker")
    assert Job.fetch(job.id, connection=queue.connection).is_finished
    tripwire.flush(5)
    assert sink.items("transaction") == []
