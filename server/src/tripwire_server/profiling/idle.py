"""Idle frames: a thread whose innermost Python frame is one of these is waiting, not working.

Samples taken while a thread waits on a lock, a selector, a queue or a sleep are left out of the
self-time ranking (they still count in the total, so shares stay fractions of the transaction's
time): otherwise the event loop's ``select`` and the SDK's own waiting threads outrank the
function that made the request slow. The list is documented in docs/profiling.md.

Only Python frames appear in a profile: ``time.sleep`` and ``socket.recv`` are C functions, so a
thread blocked in them shows its caller as the innermost frame. The C names are kept in the list
for profilers that do report them (collapsed-stack files from py-spy ``--native``).
"""

from __future__ import annotations

#: ``(module, function)`` of frames that wait. Functions are qualified names (``Class.method``).
IDLE_FUNCTIONS = frozenset(
    {
        ("threading", "Condition.wait"),
        ("threading", "Condition.wait_for"),
        ("threading", "Event.wait"),
        ("threading", "Semaphore.acquire"),
        ("threading", "BoundedSemaphore.acquire"),
        ("threading", "Barrier.wait"),
        ("threading", "Thread.join"),
        ("threading", "Thread._wait_for_tstate_lock"),
        # An event loop waiting for I/O: in selectors (below) on asyncio's own loop; with uvloop the
        # whole loop is C code, so a waiting loop shows the Python frame that started it.
        ("asyncio.runners", "Runner.run"),
        ("asyncio.runners", "run"),
        ("asyncio.base_events", "BaseEventLoop.run_forever"),
        ("asyncio.base_events", "BaseEventLoop.run_until_complete"),
        ("queue", "Queue.get"),
        ("queue", "Queue.put"),
        ("asyncio.queues", "Queue.get"),
        ("concurrent.futures.thread", "_worker"),
        ("concurrent.futures._base", "Future.result"),
        ("concurrent.futures._base", "_AcquireFutures.__enter__"),
        ("multiprocessing.connection", "wait"),
        ("multiprocessing.connection", "Connection._recv"),
        ("socket", "socket.accept"),
        ("socket", "SocketIO.readinto"),
        # The SDKs' own delivery threads waiting for work (their waits are C calls).
        ("tripwire.delivery.worker", "Worker._loop"),
        ("socketserver", "BaseServer.serve_forever"),
        ("ssl", "SSLSocket.read"),
        ("ssl", "SSLSocket.recv"),
        ("ssl", "SSLSocket.recv_into"),
        ("subprocess", "Popen.wait"),
        ("subprocess", "Popen._wait"),
        ("subprocess", "Popen.communicate"),
        ("time", "sleep"),
        ("socket", "recv"),
        ("socket", "recv_into"),
        ("select", "select"),
        ("select", "poll"),
        ("select", "epoll.poll"),
    }
)

#: Modules all of whose ``*.select`` methods wait (every selector class).
SELECT_MODULES = frozenset({"selectors"})
#: Functions that wait whatever their module: names used by event loops and the C-level waits.
IDLE_BARE_NAMES = frozenset({"select", "epoll.poll", "kqueue.control", "sleep", "lock.acquire"})
#: Modules of profilers' own sampling threads: their samples are the profiler sleeping between
#: samples, never the application's work.
PROFILER_MODULES = ("sentry_sdk.profiler", "tripwire._profiler", "tripwire._profiling", "tripwire.profil")


#: The same by bare function name (``co_name``): what collapsed-stack files from py-spy and
#: CPython's sampling profiler name frames by, with the module taken from the file name.
_IDLE_BARE = frozenset((module, function.rsplit(".", 1)[-1]) for module, function in IDLE_FUNCTIONS)


def is_idle(module: str, function: str) -> bool:
    """Whether a sample whose innermost frame is ``module``/``function`` is a waiting thread."""
    if (module, function) in IDLE_FUNCTIONS or (module, function) in _IDLE_BARE:
        return True
    if module in SELECT_MODULES and (function == "select" or function.endswith(".select")):
        return True
    if not module and function in IDLE_BARE_NAMES:
        return True
    return module.startswith(PROFILER_MODULES)


def in_profiler(modules: list[str]) -> bool:
    """Whether a stack (its frames' modules) is a profiler's own sampling thread."""
    return any(m.startswith(PROFILER_MODULES) for m in modules)
