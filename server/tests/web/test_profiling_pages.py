"""The profiling pages over HTTP (server-rendered): a profile's flame graph with zoom links, a
transaction's slowest functions, aggregated flame graph and regression, links from the
transaction summary and the trace view, and client-sent names always escaped."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

import httpx

from ..performance.payloads import transaction
from ..profiling.payloads import MAIN_THREAD, transaction_profile
from .conftest import Collector, post_envelope, wait_for

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
APP = ("handle", "app.views", "app/views.py")
HOT = ("hot_loop", "app.compute", "app/compute.py")
EVIL = (HOSTILE, HOSTILE, HOSTILE)


def _report(collector: Collector, name: str) -> tuple[object, dict[str, object]]:
    """A project with /compute in two releases (hot_loop 20 % then 70 %) and a hostile frame."""
    project = collector.new_project(name)
    now = time.time()
    tx = transaction("/compute", 900, end=now - 30, release="app@2.0")
    newer = transaction_profile(
        "/compute",
        [([APP, HOT], 70, MAIN_THREAD), ([APP, EVIL], 30, MAIN_THREAD)],
        release="app@2.0",
        transaction_id=str(tx["event_id"]),
        trace_id=tx["contexts"]["trace"]["trace_id"],
        start=now - 31,
    )
    older = transaction_profile(
        "/compute",
        [([APP, HOT], 20, MAIN_THREAD), ([APP], 80, MAIN_THREAD)],
        release="app@1.0",
        start=now - 7200,
    )
    post_envelope(collector, project, [({"type": "transaction"}, tx), ({"type": "profile"}, newer)])
    post_envelope(collector, project, [({"type": "profile"}, older)])
    wait_for(lambda: len(collector.store.profiles.list_profiles(project.id)) == 2)
    return project, tx


def test_a_profile_page_draws_its_flame_graph_and_zooms_by_link(
    collector: Collector, web: httpx.Client
) -> None:
    """The profile's flame graph has one frame per function, as wide as its share; following a
    frame's link draws the graph from that frame; hostile names are text."""
    project, tx = _report(collector, "prof-page")
    (info,) = collector.store.profiles.list_profiles(project.id, release="app@2.0")  # type: ignore[attr-defined]
    page = web.get(f"/projects/{project.id}/profiles/{info.profile_id}")  # type: ignore[attr-defined]
    assert page.status_code == 200
    assert "<script>window.__xss" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page.text
    frames = re.findall(
        r'<a class="frame" href="([^"]+)"><rect class="c\d" x="([\d.]+)" y="(\d+)" width="([\d.]+)"',
        page.text,
    )
    hot = [f for f in frames if f[2] == "36" and float(f[3]) == 840.0]
    assert len(hot) == 1  # hot_loop: 70 % of 1200
    zoomed = web.get(unquote(hot[0][0]).replace("&amp;", "&"))
    assert zoomed.status_code == 200
    top = re.findall(
        r'<rect class="c\d" x="([\d.]+)" y="0" width="([\d.]+)" height="17"><title>([^<]+)</title>',
        zoomed.text,
    )
    assert len(top) == 1 and top[0][1] == "1200.0" and top[0][2].startswith("hot_loop (app.compute)")
    assert "crumbs-nav flame-crumbs" in zoomed.text and ">handle</a>" in zoomed.text


def test_the_transaction_page_ranks_functions_and_shows_the_regression(
    collector: Collector, web: httpx.Client
) -> None:
    """The slowest functions of the newest release put hot_loop first; the regression table shows
    its share growing from 20 % to 70 %; the release filter narrows to one release."""
    project, _tx = _report(collector, "prof-tx")
    base = f"/projects/{project.id}/profiling/transaction"  # type: ignore[attr-defined]
    page = web.get(base, params={"transaction": "/compute", "release": "app@2.0"})
    assert page.status_code == 200
    functions = re.findall(r'<table class="functions">.*?</table>', page.text, re.S)[0]
    names = re.findall(r'<tr><td class="mono">([^<]+)</td>', functions)
    assert names[0] == "hot_loop" and "70.0 %" in functions
    regression = re.findall(r'<table class="regression">.*?</table>', page.text, re.S)[0]
    first = re.findall(r"<tr><td[^>]*>([^<]+)</td>.*?</tr>", regression, re.S)[1]
    assert first == "hot_loop" and "+50.0 pts" in regression
    assert '<svg class="flamegraph"' in page.text
    assert "<script>window.__xss" not in page.text
    listing = web.get(f"/projects/{project.id}/profiling")  # type: ignore[attr-defined]
    assert listing.status_code == 200 and "/compute" in listing.text


def test_the_transaction_summary_and_the_trace_link_to_the_profile(
    collector: Collector, web: httpx.Client
) -> None:
    """A sampled transaction with a profile shows a "flame graph" link in the summary's samples,
    and a "profile" link in its trace's root span; both lead to the same profile page."""
    project, tx = _report(collector, "prof-links")
    summary = web.get(
        f"/projects/{project.id}/performance/summary",  # type: ignore[attr-defined]
        params={"transaction": "/compute", "since": "1h"},
    )
    (link,) = re.findall(r'<a class="profile-link" href="([^"]+)">flame graph</a>', summary.text)
    trace = web.get(f"/traces/{tx['contexts']['trace']['trace_id']}")  # type: ignore[index]
    assert re.findall(r'<a class="profile-link" href="([^"]+)">profile</a>', trace.text) == [link]
    page = web.get(link)
    assert page.status_code == 200 and '<svg class="flamegraph"' in page.text


def test_an_unknown_profile_is_a_404(collector: Collector, web: httpx.Client) -> None:
    """A made-up profile id is a 404 page, not an error."""
    project = collector.new_project("prof-404")
    assert web.get(f"/projects/{project.id}/profiles/{'0' * 32}").status_code == 404


def test_a_non_member_sees_no_profile_and_no_profile_link(collector: Collector, web: httpx.Client) -> None:
    """The profiling pages of a project a user is not a member of are 404s, and the trace view
    (which crosses projects) shows such a user no link to that project's profile."""
    from .conftest import login

    project, tx = _report(collector, "prof-hidden")
    (info, *_rest) = collector.store.profiles.list_profiles(project.id)  # type: ignore[attr-defined]
    name = f"outsider{time.monotonic_ns()}"
    collector.store.accounts.create_user(name, "outsider password 1")
    with httpx.Client(base_url=collector.url, timeout=10) as outsider:
        assert login(outsider, name, "outsider password 1").status_code == 303
        for path in (
            f"/projects/{project.id}/profiling",  # type: ignore[attr-defined]
            f"/projects/{project.id}/profiling/transaction?transaction=/compute",  # type: ignore[attr-defined]
            f"/projects/{project.id}/profiles/{info.profile_id}",  # type: ignore[attr-defined]
        ):
            response = outsider.get(path)
            assert response.status_code == 404, path
            assert "hot_loop" not in response.text
        trace = outsider.get(f"/traces/{tx['contexts']['trace']['trace_id']}")  # type: ignore[index]
        assert "profile-link" not in trace.text
