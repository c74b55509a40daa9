"""The ``p95`` trigger's pure parts: merged windows, the percentile at its limit, the minimum count,
rule validation and the messages it sends."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tripwire_server.alerts import latency
from tripwire_server.alerts import rules as R
from tripwire_server.alerts.senders import render_email, render_webhook
from tripwire_server.performance import histogram
from tripwire_server.store.alert_records import AlertRule, Delivery


def rows(*groups: tuple[int, float]) -> list[tuple[int, str]]:
    """Rollup rows as stored: one row per (count, duration ms) group."""
    return [(n, histogram.encode({histogram.bucket(ms): n})) for n, ms in groups]


def judge(
    window: list[tuple[int, str]], above_ms: float = 800, percentile: int = 95, min_count: int = 20
) -> str:
    return latency.state(latency.tally(window, above_ms), percentile=percentile, min_count=min_count)


def test_the_window_merges_rows_of_any_minute_op_or_release_and_counts_them() -> None:
    """Rows of the window add up bucket by bucket, whichever minute, op or release they hold."""
    window = latency.merge([*rows((30, 100.0), (20, 100.0)), *rows((50, 1000.0)), (0, "{}")])
    assert window.count == 100
    assert histogram.from_dense(window.buckets) == {histogram.bucket(100.0): 50, histogram.bucket(1000.0): 50}


@pytest.mark.parametrize("percentile", [50, 75, 95, 99])
def test_the_window_percentile_is_the_performance_pages_percentile(percentile: int) -> None:
    """The dense reading agrees with histogram.quantile, which the Performance pages use."""
    durations = [1.5 * 1.07**i for i in range(137)] + [40.0] * 13
    window = latency.merge([(150, histogram.encode(histogram.of(durations)))])
    expected = histogram.quantile(histogram.of(durations), percentile / 100)
    assert window.percentile_ms(percentile) == expected


def test_p95_goes_over_the_limit_exactly_when_the_95th_of_100_transactions_is_slow() -> None:
    """Nearest rank: 6 slow of 100 put the p95 on a slow one; 5 slow of 100 leave it on a fast one."""
    over = rows((94, 100.0), (6, 1000.0))
    under = rows((95, 100.0), (5, 1000.0))
    assert latency.merge(over).percentile_ms(95) == pytest.approx(1000.0, rel=histogram.RELATIVE_ACCURACY)
    assert latency.merge(under).percentile_ms(95) == pytest.approx(100.0, rel=histogram.RELATIVE_ACCURACY)
    assert judge(over) == latency.FIRING
    assert judge(under) == latency.RESOLVED


def test_the_limit_itself_is_not_over_it() -> None:
    """Fires above ``above_ms`` only: a p95 reported at exactly the limit is at, not over, it."""
    window = rows((40, 812.0))
    reported = latency.merge(window).percentile_ms(95)
    assert reported is not None
    assert judge(window, above_ms=reported) == latency.RESOLVED
    assert judge(window, above_ms=reported - 0.001) == latency.FIRING


@pytest.mark.parametrize(("percentile", "slow", "fires"), [(50, 50, False), (50, 51, True), (99, 2, True)])
def test_other_percentiles_read_the_same_merged_histogram(percentile: int, slow: int, fires: bool) -> None:
    window = rows((100 - slow, 100.0), (slow, 1000.0))
    expected = latency.FIRING if fires else latency.RESOLVED
    assert judge(window, percentile=percentile, min_count=100) == expected


def test_too_few_transactions_neither_fire_nor_resolve() -> None:
    """Below the minimum count a window says nothing; at it, it is judged."""
    assert judge(rows((19, 5000.0))) == latency.UNKNOWN
    assert judge(rows((20, 5000.0))) == latency.FIRING
    assert judge([]) == latency.UNKNOWN
    assert judge([(0, "{}"), (0, "[]")], min_count=0) == latency.UNKNOWN


@pytest.mark.parametrize("seed", range(40))
def test_judging_by_counts_agrees_with_the_merged_percentile(seed: int) -> None:
    """``tally`` (two sums per row) says FIRING exactly when the merged window's percentile is over
    the limit, for rows of any spread, limits on and between bucket values, and every percentile."""
    rng = random.Random(seed)
    window = []
    for _ in range(rng.randint(1, 12)):
        durations = [
            rng.lognormvariate(rng.uniform(1, 8), rng.uniform(0.1, 2)) for _ in range(rng.randint(1, 80))
        ]
        text = histogram.encode(histogram.of(durations))
        window.append((len(durations), json.dumps(histogram.decode(text)) if rng.random() < 0.2 else text))
    merged = latency.merge(window)
    for percentile in R.PERCENTILES:
        value = merged.percentile_ms(percentile)
        assert value is not None
        for limit in (value, value * 0.999, value * 1.001, rng.uniform(0, 2 * value), 0.0, 1e12):
            verdict = judge(window, above_ms=limit, percentile=percentile, min_count=1)
            assert verdict == (latency.FIRING if value > limit else latency.RESOLVED), (
                percentile,
                limit,
                value,
            )


@pytest.mark.parametrize(("percentile", "default"), [(50, 20), (75, 20), (95, 20), (99, 100)])
def test_at_the_default_minimum_one_slow_transaction_alone_cannot_fire(percentile: int, default: int) -> None:
    """The default minimum is the least count where one outlier is never the percentile."""
    assert R.default_min_count(percentile) == default
    one_slow = rows((default - 1, 10.0), (1, 60_000.0))
    assert judge(one_slow, above_ms=1000, percentile=percentile, min_count=default) == latency.RESOLVED
    if percentile >= 95:  # and one fewer would let it: the bound is tight
        fewer = latency.merge(rows((default - 2, 10.0), (1, 60_000.0)))
        assert fewer.percentile_ms(percentile) == pytest.approx(60_000.0, rel=histogram.RELATIVE_ACCURACY)


def test_the_window_is_the_current_minute_and_the_ones_before_it() -> None:
    now = 1_767_268_496.0  # 12:34:56
    assert latency.window_start(now, 10) == 1_767_268_440.0 - 9 * 60
    assert latency.window_start(now, 1) == 1_767_268_440.0


@pytest.mark.parametrize("minutes", [1, 10, 59, 60, 61, 119, 120, 121, 600, 1439, 1440])
@pytest.mark.parametrize("second", [0, 1, 59 * 60 + 59, 1800, 3599 * 1.0])
def test_the_window_ranges_cover_each_minute_of_the_window_exactly_once(minutes: int, second: float) -> None:
    """Minute rows at the ends and hour rows for the whole hours between add up to the window."""
    now = 1_767_225_600.0 + 5 * 3600 + second  # some hour of a day, plus ``second``
    ranges = latency.window_ranges(now, minutes)
    covered: list[float] = []
    for res, first, end in ranges:
        stop = end if end is not None else latency.window_start(now, 1) + 60
        assert first % res == 0 and (stop - first) % res == 0
        covered += [first + k * 60 for k in range(int((stop - first) // 60))]
    expected = [latency.window_start(now, minutes) + k * 60 for k in range(minutes)]
    assert sorted(covered) == expected
    if minutes == 1440:
        assert sum(1 for res, _, _ in ranges if res == 3600) == 1  # one range of 22 or 23 hours
        assert len(ranges) == 3


def test_a_p95_rule_from_json_stores_its_defaults() -> None:
    """``percentile`` defaults to 95 and ``min_count`` to 20 (100 for p99); "p99", 99 and "99" agree."""
    base = {"on": "p95", "webhook": "https://h.example/x", "above_ms": 800, "window": 10}
    spec = R.spec_from_json(base)
    assert (spec.above_ms, spec.window_minutes, spec.percentile, spec.min_count) == (800.0, 10, 95, 20)
    for value in ("p99", 99, "99"):
        spec = R.spec_from_json({**base, "percentile": value})
        assert (spec.percentile, spec.min_count) == (99, 100)
    spec = R.spec_from_json({**base, "min_count": 5, "filters": {"transaction": "GET /x"}})
    assert spec.min_count == 5 and spec.filters.transaction == "GET /x"
    # The p95 fields of a form mean nothing to another trigger: they are not stored with it.
    other = R.spec_from_json({"on": "new-issue", "email": "a@b.co", "percentile": "p95", "above_ms": 3})
    assert (other.percentile, other.above_ms, other.min_count) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"window": 10}, "--above-ms"),
        ({"above_ms": 0, "window": 10}, "--above-ms"),
        ({"above_ms": "nan", "window": 10}, "--above-ms"),
        ({"above_ms": 800}, "--window"),
        ({"above_ms": 800, "window": 1441}, "--window"),
        ({"above_ms": 800, "window": 10, "percentile": "p90"}, "p50, p75, p95, p99"),
        ({"above_ms": 800, "window": 10, "percentile": "fast"}, "p50, p75, p95, p99"),
        ({"above_ms": 800, "window": 10, "min_count": 0}, "--min-count"),
        ({"above_ms": 800, "window": 10, "filters": {"level": "error"}}, "--environment"),
        ({"above_ms": 800, "window": 10, "filters": {"tags": {"k": "v"}}}, "--environment"),
    ],
)
def test_incomplete_p95_rules_are_refused_with_a_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(R.RuleError, match=reason):
        R.spec_from_json({"on": "p95", "email": "a@b.co", **body})


def test_a_transaction_filter_belongs_to_p95_rules_only() -> None:
    with pytest.raises(R.RuleError, match="--tag transaction:NAME"):
        R.spec_from_json({"on": "new-issue", "email": "a@b.co", "filters": {"transaction": "GET /x"}})


def _delivery(fmt: str, *statuses: str) -> Delivery:
    rule = AlertRule(
        id=4, project_id=2, name="slow checkout", trigger="p95", threshold=None, window_minutes=10,
        below=None, min_sessions=None, once=False, filters=R.Filters(environment="production"),
        webhook_url="https://h.example/x", format=fmt, email="ops@example.com", secret="k",
        cooldown=1800, digest=60, created_at=0, above_ms=800.0, percentile=95, min_count=20,
    )  # fmt: skip
    slow = latency.merge(rows((90, 120.0), (10, 1234.0)))
    messages = [
        {
            "trigger": "p95",
            **latency.item(
                f"GET /checkout/<id> & <b>{n}</b>",
                slow if status == latency.FIRING else latency.merge(rows((100, 120.0))),
                status=status,
                percentile=95,
                above_ms=800.0,
                window_minutes=10,
                environment="production",
                release=None,
            ),
        }
        for n, status in enumerate(statuses)
    ]
    return Delivery("u1", rule, "webhook", "shop", messages, list(range(len(messages))), 1)


def test_the_json_item_carries_the_transaction_its_p95_the_limit_window_count_and_summary_link() -> None:
    data = json.loads(render_webhook(_delivery("json", latency.FIRING), "https://errors.example.com")[0])
    assert data["type"] == "p95"
    item = data["items"][0]
    assert item["transaction"] == "GET /checkout/<id> & <b>0</b>" and item["status"] == "firing"
    assert item["percentile"] == "p95" and item["threshold_ms"] == 800.0
    assert item["duration_ms"] == pytest.approx(1234.0, rel=histogram.RELATIVE_ACCURACY)
    assert (item["window_minutes"], item["count"], item["environment"]) == (10, 100, "production")
    link = urlsplit(item["url"])
    assert link.path == "/projects/2/performance/summary"
    assert parse_qs(link.query) == {
        "transaction": ["GET /checkout/<id> & <b>0</b>"],
        "since": ["10m"],
        "environment": ["production"],
    }
    assert data["text"].startswith("GET /checkout/<id> & <b>0</b>: p95 1,2") and "over 800 ms" in data["text"]
    assert "(100 transactions in 10 min)" in data["text"]


def test_chat_and_email_messages_say_the_same_and_escape_the_transaction_name() -> None:
    slack = json.loads(render_webhook(_delivery("slack", latency.FIRING), "https://e.example")[0])["text"]
    assert "&lt;b&gt;0&lt;/b&gt;: p95 1,2" in slack and "over 800 ms (100 transactions in 10 min)" in slack
    assert "<https://e.example/projects/2/performance/summary?transaction=GET%20%2Fcheckout" in slack
    msg = render_email(_delivery("json", latency.FIRING), "https://e.example", "a@b.c")
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    text, page = plain.get_content(), html.get_content()
    assert "GET /checkout/<id> & <b>0</b>: p95 1,2" in text and "over 800 ms" in text
    assert "https://e.example/projects/2/performance/summary?transaction=" in text
    assert "&lt;b&gt;0&lt;/b&gt;" in page and "<b>0</b>" not in page


def test_resolved_notices_say_so_alone_and_in_a_digest() -> None:
    one = json.loads(render_webhook(_delivery("json", latency.RESOLVED), "https://e.example")[0])
    assert one["text"].startswith("Resolved: GET /checkout") and "at or under 800 ms again" in one["text"]
    assert one["items"][0]["status"] == "resolved"
    mixed = json.loads(
        render_webhook(
            _delivery("json", latency.FIRING, latency.FIRING, latency.RESOLVED), "https://e.example"
        )[0]
    )
    assert mixed["text"] == "2 transactions over their p95 limit, 1 back at or under it in shop"
    back = json.loads(
        render_webhook(_delivery("json", latency.RESOLVED, latency.RESOLVED), "https://e.example")[0]
    )
    assert back["text"] == "2 transactions back at or under their p95 limit in shop"
