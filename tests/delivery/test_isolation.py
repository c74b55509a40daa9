"""A slow or dead backend never delays the others, and never the application."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

import tripwire
from tests.support.figures import record
from tests.support.sink import Answer, Sink
from tripwire.reporters.sentry import SentryReporter

from .conftest import free_port, raise_and_capture


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections (the kernel does) but never answers a request."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def test_a_dead_backend_does_not_delay_a_live_one(sink: Sink) -> None:
    """With one reporter on a dead port and one on a live sink, the live one gets all 200 events at once."""
    dead = SentryReporter(f"http://k@127.0.0.1:{free_port()}/1", name="dead")
    live = SentryReporter(sink.dsn, name="live")
    # Every occurrence, not one per error and minute: this is about delivery, not storms.
    tripwire.init(reporters=[dead, live], send_client_reports=False, repeat_limit=None)
    started = time.monotonic()
    raise_and_capture(200)
    assert sink.wait_until(lambda: len(sink.events) == 200, 30)
    elapsed = time.monotonic() - started
    assert live.flush(5)
    assert elapsed < 15
    stats = tripwire.stats()
    assert stats["sent"] == {"live": 200}
    assert stats["pending"]["dead"] == 200


def test_a_backend_that_never_answers_does_not_delay_a_live_one(sink: Sink, blackhole: int) -> None:
    """A backend that accepts and then hangs costs the live reporter nothing; its own sender times out."""
    hung = SentryReporter(f"http://k@127.0.0.1:{blackhole}/1", name="hung", http_timeout=0.2)
    live = SentryReporter(sink.dsn, name="live")
    tripwire.init(reporters=[hung, live], send_client_reports=False)
    raise_and_capture(50)
    assert sink.wait_until(lambda: len(sink.events) == 50, 20)
    # The hung reporter's flush gives up at its timeout instead of hanging the caller.
    started = time.monotonic()
    assert tripwire.flush(0.3) is False
    assert time.monotonic() - started < 1.5


def test_close_with_a_dead_backend_returns_within_the_timeout() -> None:
    """close(timeout) never waits longer than asked, even with every event undeliverable."""
    client = tripwire.init(f"http://k@127.0.0.1:{free_port()}/1", send_client_reports=False)
    raise_and_capture(20)
    started = time.monotonic()
    tripwire.close(0.3)
    assert time.monotonic() - started < 0.9
    assert tripwire.get_client() is None
    # What could not be delivered is counted, not silently lost.
    assert sum(client.stats.snapshot()["dropped"].values()) == 20


def test_undelivered_events_at_close_are_counted() -> None:
    """Events still waiting when close() gives up count as network_error drops."""
    client = tripwire.init(f"http://k@127.0.0.1:{free_port()}/1", send_client_reports=False)
    raise_and_capture(20)
    client.close(0.2)
    assert client.stats.snapshot()["dropped"] == {"network_error": 20}


async def _lag_while_capturing(n: int) -> list[float]:
    """Lags of a 1 ms ticker while ``n`` errors are captured from the event loop."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            before = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - before - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    lags.clear()
    for i in range(n):
        try:
            raise RuntimeError(f"request {i} failed")
        except RuntimeError:
            tripwire.capture_exception()
        if i % 10 == 0:
            await asyncio.sleep(0)  # like requests: the loop runs between failures
    # Keep measuring while the worker builds and the sender pushes against the slow sink.
    await asyncio.sleep(1.5)
    stop = True
    await tick
    return lags


@pytest.mark.slow
@pytest.mark.reliability
def test_delivery_never_blocks_the_event_loop() -> None:
    """Capturing 1,000 errors against a sink that takes 1 s per request never stalls the event loop
    for the length of a request, and nothing is lost meanwhile.

    A send on the loop would stall it for >= 1 s. The lag figures themselves (median, p99: GIL
    hand-offs and the OS scheduler) are measured by bench/loop_lag_bench.py, not asserted here.
    """
    with Sink() as sink:
        sink.answer = Answer(delay=1.0)
        tripwire.init(sink.dsn, send_client_reports=False, repeat_limit=None)
        lags = sorted(asyncio.run(_lag_while_capturing(1000)))
        stats = tripwire.stats()
        tripwire.close(0)
    worst = lags[-1]
    assert len(lags) > 100  # the ticker did run throughout
    assert worst < 0.5
    # The events are still on their way (the sink is slow), not lost.
    assert stats["dropped"] == {}
    record(
        "transport",
        "worst event-loop stall while 1,000 errors go to a backend taking 1 s/request",
        f"{worst * 1e3:.1f} ms",
        "tests/delivery/test_isolation.py; a send on the loop would stall >= 1 s",
    )
