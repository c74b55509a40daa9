"""Profiles read from both sample formats, per-function counts, idle frames, chunk attribution
and the flame-graph layout (pure code: no server)."""

from __future__ import annotations

import pytest

from tripwire_server.profiling import aggregate, flamegraph, idle, model

from .payloads import MAIN_THREAD, OTHER_THREAD, chunk, transaction_profile, transaction_under

APP = ("handle", "app.views", "app/views.py")
HOT = ("hot_loop", "app.compute", "app/compute.py")
HELPER = ("helper", "app.compute", "app/compute.py")
SELECT = ("EpollSelector.select", "selectors", "selectors.py")
WAIT = ("Condition.wait", "threading", "threading.py")


def test_only_the_transaction_thread_counts_and_idle_frames_have_no_self_time() -> None:
    """60 % of the request thread's samples in hot_loop give it a 0.6 self share; another
    thread's busy samples and the loop waiting in select are nobody's self time."""
    profile = model.from_profile(
        transaction_profile(
            "/compute",
            [
                ([APP, HOT], 60, MAIN_THREAD),
                ([APP, HOT, HELPER], 10, MAIN_THREAD),
                ([SELECT], 30, MAIN_THREAD),
                ([WAIT], 500, OTHER_THREAD),
                ([HELPER], 500, OTHER_THREAD),
            ],
        )
    )
    counts = aggregate.function_counts(profile, aggregate.counted_threads(profile))
    assert counts.samples == 100 and counts.idle == 30
    assert counts.functions[HOT] == [60, 70]
    assert counts.functions[HELPER] == [10, 10]
    assert counts.functions[APP] == [0, 70]
    assert counts.functions[SELECT] == [0, 30]


def test_recursion_counts_a_function_once_per_sample_in_its_total() -> None:
    """A function three times on one stack is on the stack in that sample once: total 1, not 3."""
    profile = model.from_profile(transaction_profile("/r", [([APP, HOT, HOT, HOT], 1, MAIN_THREAD)]))
    counts = aggregate.function_counts(profile, MAIN_THREAD)
    assert counts.functions[HOT] == [1, 1]


@pytest.mark.parametrize(
    ("module", "function", "waiting"),
    [
        ("selectors", "KqueueSelector.select", True),
        ("threading", "Event.wait", True),
        ("queue", "Queue.get", True),
        ("time", "sleep", True),
        ("asyncio.runners", "Runner.run", True),
        ("sentry_sdk.profiler.transaction_profiler", "ThreadScheduler.run", True),
        ("app.compute", "select", False),
        ("app.compute", "hot_loop", False),
    ],
)
def test_idle_frames_are_recognised_by_module_and_function(module: str, function: str, waiting: bool) -> None:
    """Waits in the standard library (and profilers' own threads) are idle; an app's
    function named like one is not."""
    assert idle.is_idle(module, function) is waiting


def test_a_chunk_splits_by_the_transactions_that_ran_on_each_thread() -> None:
    """Samples of a transaction's thread inside its window are its own; the rest is (continuous);
    where two overlap, the one that started last gets the sample."""
    profiler = "a" * 32
    start = 1_700_000_000.0
    data = chunk(profiler, [([APP, HOT], 100, MAIN_THREAD), ([HELPER], 100, OTHER_THREAD)], start=start)
    parsed = model.from_chunk(data)
    first = model.window_of(transaction_under(profiler, "/a", start + 0.1, start + 0.5), 1, "1" * 32)
    inner = model.window_of(transaction_under(profiler, "/b", start + 0.3, start + 0.4), 1, "2" * 32)
    assert first is not None and inner is not None
    parts = {p.transaction_name: p for p in model.attribute(parsed, [first, inner])}
    assert set(parts) == {"/a", "/b", model.CONTINUOUS}
    # Samples every 10 ms on the main thread: /b owns 0.30..0.40 (11 samples), /a the rest of 0.10..0.50.
    assert len(parts["/b"].samples) == 11
    assert len(parts["/a"].samples) == 41 - 11
    assert parts["/a"].transaction_event_id == "1" * 32 and parts["/a"].active_thread_id == MAIN_THREAD
    assert len(parts[model.CONTINUOUS].samples) == 200 - 41
    assert {tid for _ts, tid, _s in parts["/a"].samples} == {MAIN_THREAD}


def test_a_transaction_without_a_profiler_id_has_no_window() -> None:
    """Only transactions that name a continuous profiler (contexts.profile) are windows."""
    tx = transaction_under("b" * 32, "/x", 1.0, 2.0)
    del tx["contexts"]["profile"]
    assert model.window_of(tx, 1, "3" * 32) is None


@pytest.mark.parametrize(
    "broken",
    [
        {"profile": {"frames": [], "stacks": [[0]], "samples": []}},
        {"profile": {"frames": [{"function": "f"}], "stacks": [[0]], "samples": [{"stack_id": 7}]}},
        {"profile": "not an object"},
        [],
    ],
)
def test_malformed_profiles_are_refused_with_a_reason(broken: object) -> None:
    """Out-of-range indexes and wrong shapes raise ValueError (the digest counts them invalid)."""
    with pytest.raises(ValueError):
        model.from_profile(broken)
    with pytest.raises(ValueError):
        model.from_chunk(broken)


def test_the_flame_graph_gives_each_frame_its_share_of_the_width_and_zooms_by_path() -> None:
    """A frame with 70 % of the samples is 70 % wide under its parent; focusing on it makes it
    the full width; a made-up path falls back to the whole graph."""
    profile = model.from_profile(
        transaction_profile("/f", [([APP, HOT], 70, MAIN_THREAD), ([APP, HELPER], 30, MAIN_THREAD)])
    )
    tree = aggregate.flame_tree([profile])
    graph = flamegraph.layout(tree)
    by_name = {r.function: r for r in graph.rects}
    assert by_name["hot_loop"].width == pytest.approx(0.7 * flamegraph.WIDTH)
    assert by_name["helper"].width == pytest.approx(0.3 * flamegraph.WIDTH)
    assert by_name["hot_loop"].depth == 2 and by_name["handle"].depth == 1
    zoomed = flamegraph.layout(tree, by_name["hot_loop"].path)
    assert zoomed.rects[0].function == "hot_loop" and zoomed.rects[0].width == pytest.approx(flamegraph.WIDTH)
    assert [c[0] for c in zoomed.crumbs] == ["all", "handle", "hot_loop"]
    assert flamegraph.layout(tree, "9.9.9").total == 100


def test_a_profile_from_a_clock_ahead_is_shifted_and_an_old_one_refused() -> None:
    """A profile ending a day after it was received is moved back to its arrival; one that ended
    more than 30 days before is refused (the digest counts it too_old)."""
    now = 1_700_000_000.0
    ahead = model.from_profile(transaction_profile("/f", [([APP], 10, MAIN_THREAD)], start=now + 86400))
    assert model.fit_clock(ahead, now)
    assert ahead.end == pytest.approx(now) and ahead.samples[-1][0] == pytest.approx(now)
    old = model.from_chunk(chunk("c" * 32, [([APP], 3, MAIN_THREAD)], start=now - 31 * 86400))
    assert not model.fit_clock(old, now)


def test_a_window_without_a_thread_takes_every_threads_samples_in_its_time() -> None:
    """A transaction that names its profiler but not its thread owns the samples of every thread
    within its start and end; counted over all those threads."""
    profiler = "d" * 32
    start = 1_700_000_000.0
    parsed = model.from_chunk(
        chunk(profiler, [([APP, HOT], 50, MAIN_THREAD), ([HELPER], 50, OTHER_THREAD)], start=start)
    )
    tx = transaction_under(profiler, "/t", start + 0.1, start + 0.195)
    del tx["contexts"]["trace"]["data"]
    window = model.window_of(tx, 1, "4" * 32)
    assert window is not None and window.thread_id == ""
    parts = {p.transaction_name: p for p in model.attribute(parsed, [window])}
    # Samples every 10 ms: 0.10..0.19 is 10 samples of the main thread; the other thread's run later.
    assert len(parts["/t"].samples) == 10 and parts["/t"].active_thread_id is None
    assert aggregate.counted_threads(parts["/t"]) is None
