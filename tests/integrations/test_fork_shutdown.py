"""Forks, shutdown during a flush, and captures at odd moments never deadlock, crash or print.

Every scenario runs in its own interpreter against a real HTTP sink, with ``faulthandler`` set to
dump the stacks and exit if it hangs; each must end within its timeout, exit 0 and leave stderr
empty (no traceback, no "Exception ignored"), and the events it captured must arrive (or, where the
SDK was already closed, be counted rather than printed).

Already covered elsewhere: one fork after init (tests/delivery/test_worker.py), a fork while one of
tripwire's locks is held (tests/support/forking.py users), the silent atexit flush (test_worker.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.figures import record
from tests.support.sink import Answer, Sink

pytestmark = [pytest.mark.reliability, pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")]

ROOT = Path(__file__).resolve().parents[2]

#: Every script starts with this: stacks are dumped (and the process ends) if it hangs. An alarm,
#: not faulthandler.dump_traceback_later: its watchdog does not survive fork(), and a forked child
#: that exits normally would then hang in faulthandler's own shutdown.
PRELUDE = """
import faulthandler, os, signal, sys, time, warnings

# Python 3.12+ warns at every fork of a process with threads (tripwire's delivery thread is one):
# the interpreter's notice, not output of tripwire's.
warnings.filterwarnings("ignore", "This process .* is multi-threaded, use of fork", DeprecationWarning)

def _hung(signum, frame):
    faulthandler.dump_traceback(all_threads=True)
    os._exit(70)

signal.signal(signal.SIGALRM, _hung)
signal.alarm({hang})
import tripwire
DSN = sys.argv[1]
"""


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink() as running:
        yield running


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPWIRE_", "SENTRY_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


def _run(code: str, sink: Sink, *, hang: int = 10, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (after PRELUDE) in a fresh interpreter; it must end by itself, exit 0, print nothing."""
    script = textwrap.dedent(PRELUDE.format(hang=hang)) + textwrap.dedent(code)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenario.py"  # a file, so that spawned children can import __main__
        path.write_text(script)
        done = subprocess.run(
            [sys.executable, str(path), sink.dsn],
            env=_env(),
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, f"exit {done.returncode} after {elapsed:.1f} s\n{done.stderr}"
    assert done.stderr == "", done.stderr
    return done


def _messages(sink: Sink) -> Counter[str]:
    return Counter(e["logentry"]["formatted"] for e in sink.events if "logentry" in e)


def _exceptions(sink: Sink) -> Counter[str]:
    return Counter(e["exception"]["values"][-1]["value"] for e in sink.events if "exception" in e)


# -- forks ------------------------------------------------------------------------------------------


def test_forked_children_deliver_and_never_resend_the_parents_events(sink: Sink) -> None:
    """Ten children forked while the parent's worker is busy: their events and the parent's arrive once."""
    _run(
        """
        tripwire.init(DSN, send_client_reports=False, release=None, repeat_limit=None)
        children = []
        for child in range(10):
            for i in range(20):  # the worker and sender are busy with these while we fork
                tripwire.capture_message(f"parent {child}.{i}")
            pid = os.fork()
            if pid == 0:
                signal.alarm(8)  # alarms are not inherited by a forked child
                for i in range(3):
                    try:
                        raise KeyError(f"child {child}.{i}")
                    except KeyError:
                        tripwire.capture_exception()
                if child % 2:
                    os._exit(0 if tripwire.flush(10) else 3)  # an explicit flush, then a hard exit
                sys.exit(0)  # a normal exit: the atexit flush delivers
            children.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
        assert codes == [0] * 10, codes
        assert tripwire.flush(10)
        """,
        sink,
    )
    assert sink.wait_until(lambda: len(sink.events) >= 230, 10)
    messages, errors = _messages(sink), _exceptions(sink)
    assert set(messages.values()) == {1} and len(messages) == 200
    assert set(errors.values()) == {1} and len(errors) == 30
    record(
        "fork-shutdown",
        "os.fork children (forked while the parent delivers)",
        "10 children, 0 lost",
        "230 events, each delivered exactly once; children ending by os._exit after flush and by sys.exit",
    )


def test_every_module_tripwire_s_threads_import_is_imported_by_the_fork_hook_first(sink: Sink) -> None:
    """A fork while the worker is importing leaves the child a held import lock: the hook prevents it.

    The worker imports what it needs on first use (codecs for getaddrinfo, the event and transaction
    builders, http.client...). Every module imported off the main thread during a full delivery must
    be one the hook imports in the forking thread before a fork; otherwise a child forked mid-import
    inherits a lock no thread of it will release, and its worker hangs on its first connect.
    """
    _run(
        """
        import importlib.abc, threading

        off_main = set()

        class Recorder(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if threading.current_thread() is not threading.main_thread():
                    off_main.add(name)
                return None

        tripwire.init(DSN, send_client_reports=False, traces_sample_rate=1.0)
        sys.meta_path.insert(0, Recorder())
        try:
            raise KeyError("delivered from the worker")
        except KeyError:
            tripwire.capture_exception()
        with tripwire.start_span(op="task", name="job"):  # no transaction open: this starts one
            with tripwire.start_span(op="db", name="select 1"):
                pass
        assert tripwire.flush(10)
        imported_by_threads = {name for name in off_main if name in sys.modules}
        assert imported_by_threads, "the probe saw no import: it would prove nothing"

        # In a fresh interpreter, what the fork hook imports (it runs in the forking thread).
        import subprocess
        hook = (
            "import sys, tripwire; tripwire.init(sys.argv[1], traces_sample_rate=1.0);"
            "tripwire._forksafe._finish_imports(); print(' '.join(sys.modules))"
        )
        loaded = subprocess.run([sys.executable, "-c", hook, DSN], capture_output=True, text=True, check=True)
        missing = imported_by_threads - set(loaded.stdout.split())
        assert not missing, f"imported by tripwire's threads, not by the fork hook: {sorted(missing)}"
        """,
        sink,
    )


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_deliver_what_they_capture(sink: Sink, method: str) -> None:
    """Pool workers (fork: inheriting the SDK; spawn: initialising it) deliver every capture, then exit."""
    _run(
        f"""
        import multiprocessing

        def init_child():
            # A spawned child is a new interpreter: the app initialises tripwire there, as at startup.
            if tripwire.get_client() is None:
                tripwire.init(DSN, send_client_reports=False, release=None, repeat_limit=None)

        def job(n):
            try:
                raise ValueError(f"job {{n}} failed")
            except ValueError:
                tripwire.capture_exception()
            return n

        if __name__ == "__main__":
            tripwire.init(DSN, send_client_reports=False, release=None, repeat_limit=None)
            with multiprocessing.get_context("{method}").Pool(2, initializer=init_child) as pool:
                assert sorted(pool.map(job, range(20))) == list(range(20))
                pool.close()
                pool.join()  # the workers exit on their own: what they captured must not be lost
        """,
        sink,
        hang=25,
        timeout=40,
    )
    assert sink.wait_until(lambda: len(sink.events) >= 20, 5)
    errors = _exceptions(sink)
    assert errors == Counter({f"job {n} failed": 1 for n in range(20)})
    record(
        "fork-shutdown",
        f"multiprocessing ({method}) pool workers",
        "20 jobs, 0 lost",
        "every capture of a pool worker that then exited normally arrived once",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_gunicorn_prefork_workers_deliver_with_the_sdk_initialised_before_the_fork(
    sink: Sink, tmp_path: Path
) -> None:
    """gunicorn --preload (init in the master, then fork): each failing request reported once; clean stop."""
    (tmp_path / "wsgi_app.py").write_text(
        textwrap.dedent(
            """
            import os
            import tripwire

            tripwire.init(os.environ["TRIPWIRE_TEST_DSN"], send_client_reports=False, release=None,
                          repeat_limit=None)

            def app(environ, start_response):
                if environ["PATH_INFO"].startswith("/fail/"):
                    raise RuntimeError("request " + environ["PATH_INFO"][6:] + " failed")
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [str(os.getpid()).encode()]
            """
        )
    )
    port = _free_port()
    env = {**_env(), "TRIPWIRE_TEST_DSN": sink.dsn}
    env["PYTHONPATH"] += os.pathsep + str(tmp_path)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--preload",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "error",
        "--error-logfile",
        os.devnull,
        "--graceful-timeout",
        "10",
        "wsgi_app:app",
    ]
    server = subprocess.Popen(
        command, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    import http.client

    def get(path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get("/")
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        statuses = [get(f"/fail/{i}") for i in range(40)]
        assert statuses == [500] * 40
        arrived = sink.wait_until(lambda: len(sink.events) >= 40, 10)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
            pytest.fail(f"gunicorn did not stop on SIGTERM:\n{stderr}")
    assert arrived, f"{len(sink.events)} of 40 events\n{stderr}"
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    errors = _exceptions(sink)
    assert errors == Counter({f"request {i} failed": 1 for i in range(40)})
    record(
        "fork-shutdown",
        "gunicorn --preload, 2 sync workers",
        "40 failing requests, 0 lost",
        "SDK initialised in the master before the fork; each error reported once; SIGTERM stop clean",
    )


# -- shutdown during a flush ------------------------------------------------------------------------


def test_close_during_a_flush_returns_in_time_and_counts_what_it_left(sink: Sink) -> None:
    """close(1) while another thread flushes to a slow backend: both return, every event accounted for."""
    sink.answer = Answer(delay=0.3)
    done = _run(
        """
        import threading
        tripwire.init(DSN, send_client_reports=False, release=None, repeat_limit=None)
        client = tripwire.get_client()
        for i in range(30):
            tripwire.capture_message(f"slow {i}")
        flushed = []
        flusher = threading.Thread(target=lambda: flushed.append(tripwire.flush(30)))
        flusher.start()
        time.sleep(0.2)  # the flush is under way
        started = time.monotonic()
        tripwire.close(1.0)
        closed_in = time.monotonic() - started
        flusher.join(5)
        assert not flusher.is_alive(), "flush() never returned after close()"
        stats = client.stats.snapshot()
        sent = sum(stats["sent"].values())
        dropped = sum(stats["dropped"].values())
        print(closed_in, sent, dropped, flushed[0])
        assert sent + dropped == 30, stats
        """,
        sink,
    )
    closed_in, sent, dropped, _ = done.stdout.split()
    assert float(closed_in) < 2.0
    assert len(sink.events) == int(sent)
    record(
        "fork-shutdown",
        "close(1 s) during a flush against a 0.3 s/request backend",
        f"returned in {float(closed_in):.2f} s",
        f"{sent} delivered, {dropped} counted, 0 unexplained",
    )


def test_interpreter_exit_during_a_flush_ends_quietly_in_time(sink: Sink) -> None:
    """The main thread ends while a daemon thread flushes to a slow backend: a quiet exit, in time."""
    sink.answer = Answer(delay=0.3)
    started = time.monotonic()
    _run(
        """
        import threading
        tripwire.init(DSN, send_client_reports=False, release=None, repeat_limit=None, shutdown_timeout=1.0)
        for i in range(30):
            tripwire.capture_message(f"slow {i}")
        threading.Thread(target=tripwire.flush, args=(30,), daemon=True).start()
        time.sleep(0.2)
        """,
        sink,
    )
    elapsed = time.monotonic() - started
    record(
        "fork-shutdown",
        "interpreter exit during a flush (shutdown_timeout 1 s)",
        f"exited in {elapsed:.2f} s",
        f"{len(sink.events)} of 30 delivered against 0.3 s/request; silent",
    )
    assert elapsed < 8  # interpreter start, imports, 1 s of shutdown_timeout, on a busy machine


# -- captures at odd moments ------------------------------------------------------------------------


def test_captures_from_signal_handlers_never_deadlock(sink: Sink) -> None:
    """A signal every 1 ms of CPU whose handler captures while the main thread captures: no deadlock."""
    done = _run(
        """
        import signal
        # The default repeat limit: most captures are counted, not sent, through the limiter's lock.
        tripwire.init(DSN, send_client_reports=False, release="app@1")
        handled = 0
        inside = False

        def on_alarm(signum, frame):
            global handled, inside
            if inside:
                return  # a signal while the handler runs: Python would nest handlers without end
            inside = True
            handled += 1
            try:
                raise TimeoutError(f"alarm {handled}")
            except TimeoutError:
                tripwire.capture_exception()
            tripwire.add_breadcrumb("alarm", category="signal")
            inside = False

        signal.signal(signal.SIGPROF, on_alarm)  # SIGALRM is the hang watchdog's
        signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
        main = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            main += 1
            tripwire.set_tag("round", str(main))
            tripwire.capture_message("main tick")  # one error over and over: the repeat limit counts it
            tripwire.stats()
        signal.setitimer(signal.ITIMER_PROF, 0)
        assert tripwire.flush(20)
        stats = tripwire.stats()
        print(handled, main, sum(stats["sent"].values()), sum(stats["dropped"].values()))
        """,
        sink,
        hang=25,
        timeout=40,
    )
    handled, main, sent, dropped = (int(x) for x in done.stdout.split())
    # Both really captured (SIGPROF counts CPU time: a busy machine sends fewer signals).
    assert handled > 10 and main > 10
    assert sent + dropped == handled + main and sent == len(sink.events)
    record(
        "fork-shutdown",
        "captures from a signal handler (SIGPROF every 1 ms of CPU) over 1 s",
        f"{handled} handler captures, 0 deadlocks",
        f"{main} captures on the main thread meanwhile; {sent} delivered, {dropped} counted",
    )


def test_captures_from_finalizers_never_deadlock_or_print(sink: Sink) -> None:
    """__del__ that captures, run by the collector at any allocation (inside tripwire too): no deadlock."""
    done = _run(
        """
        import gc
        tripwire.init(DSN, send_client_reports=False, release=None, repeat_limit=None)
        finalized = 0

        class Leaky:
            def __init__(self):
                self.cycle = self  # only the cycle collector frees it: at any allocation, anywhere

            def __del__(self):
                global finalized
                finalized += 1
                tripwire.capture_message(f"finalized {finalized}")

        gc.set_threshold(1, 1, 1)  # collect almost constantly, so finalizers run inside tripwire's code
        for i in range(300):
            Leaky()
            try:
                raise LookupError(f"lookup {i}")
            except LookupError:
                tripwire.capture_exception()
        gc.set_threshold(700, 10, 10)
        # gc.collect() returns at once while another thread's collection runs (the delivery thread
        # collects all the time at threshold 1): collect with the threshold back up, twice.
        gc.collect()
        gc.collect()
        assert tripwire.flush(20)
        stats = tripwire.stats()
        print(finalized, sum(stats["sent"].values()), sum(stats["dropped"].values()))
        """,
        sink,
        hang=25,
        timeout=40,
    )
    finalized, sent, dropped = (int(x) for x in done.stdout.split())
    assert finalized == 300
    assert sent + dropped == 600 and sent == len(sink.events)
    record(
        "fork-shutdown",
        "captures from __del__ run by the cycle collector (threshold 1)",
        "300 finalizer captures, 0 deadlocks",
        f"{sent} delivered, {dropped} counted",
    )


def test_captures_during_interpreter_finalisation_are_quiet(sink: Sink) -> None:
    """Captures from atexit handlers (before and after tripwire's) and late module teardown: no traceback."""
    done = _run(
        """
        import atexit

        def after_tripwire_closed():
            # Registered before init, so it runs after tripwire's own atexit close.
            tripwire.capture_message("atexit after close")
            tripwire.add_breadcrumb("late")
            tripwire.flush(1)

        atexit.register(after_tripwire_closed)
        tripwire.init(DSN, send_client_reports=False, release=None, repeat_limit=None)

        def before_tripwire_closes():
            tripwire.capture_message("atexit before close")

        atexit.register(before_tripwire_closes)

        class Teardown:
            # Defaults, not globals: by the time this runs the script's globals may be gone.
            def __del__(self, tripwire=tripwire, write=os.write):
                # Runs while modules are being torn down, long after tripwire was closed.
                tripwire.capture_message("module teardown")
                try:
                    raise RuntimeError("during teardown")
                except RuntimeError:
                    tripwire.capture_exception()
                write(1, b"teardown ran\\n")

        keeper = Teardown()
        keeper.self = keeper  # a cycle: freed by the final collection, after atexit
        tripwire.capture_message("main")
        """,
        sink,
    )
    assert done.stdout == "teardown ran\n"  # the late capture did run (quietly)
    messages = _messages(sink)
    assert messages == Counter({"main": 1, "atexit before close": 1})
    record(
        "fork-shutdown",
        "captures during interpreter finalisation (atexit, module teardown)",
        "0 tracebacks",
        "before tripwire's atexit close: delivered; after it: closed, the capture returns None quietly",
    )
