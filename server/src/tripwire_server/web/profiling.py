"""Profiling pages: the profiled transactions, one transaction's slowest functions with its
aggregated flame graph and release regression, and one stored profile's flame graph.

Flame graphs are inline SVG drawn on the server (attributes only: no inline style, no script, as
the CSP wants); each frame links to the same page focused on it (``?focus=`` the frame's path),
so zooming needs no JavaScript. Every name comes from a client and is escaped by the templates.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from ..performance.service import parse_since
from ..profiling import service
from ..profiling.aggregate import flame_tree
from ..profiling.flamegraph import layout
from ..store import NotFound
from ._auth import Page
from .issues import not_found, project_of
from .performance import RANGES


def _since(page: Page) -> str:
    since = page.request.query_params.get("since", "24h")
    return since if since in RANGES else "24h"


def _focus(page: Page) -> str:
    return page.request.query_params.get("focus", "")[:600]


def profiling_list(page: Page) -> Response:
    """``GET /projects/{project}/profiling``: the profiled transactions, most samples first."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    since = _since(page)
    rows = page.store.profiles.profile_transactions(project.id, time.time() - parse_since(since))
    links = [
        (
            name,
            samples,
            f"/projects/{project.id}/profiling/transaction?"
            + urlencode({"transaction": name, "since": since}),
        )
        for name, samples in rows
    ]
    profiles = page.store.profiles.list_profiles(project.id, since=time.time() - parse_since(since), limit=20)
    return page.render(
        "profiling.html", project=project, rows=links, since=since, ranges=RANGES, profiles=profiles
    )


def profiling_transaction(page: Page) -> Response:
    """``GET /projects/{project}/profiling/transaction?transaction=&release=``: the slowest
    functions, the aggregated flame graph, and this release against the previous one."""
    try:
        project = project_of(page)
    except NotFound:
        return not_found(page, "Project")
    params = page.request.query_params
    name = params.get("transaction", "")[:200]
    if not name:
        return not_found(page, "Transaction")
    since = _since(page)
    until = time.time()
    start = until - parse_since(since)
    releases = page.store.profiles.profile_releases(project.id, name, start)
    release = params.get("release") or None
    if release is not None and release not in releases:
        release = None
    totals, functions = service.functions(page.store, project, name, start, until, release=release, limit=500)
    # The table ranks where time is spent; functions only ever on the stack are in the flame graph.
    on_stack_only = sum(1 for f in functions if not f["samples"])
    functions = [f for f in functions if f["samples"]][:30]
    regression = service.regression(page.store, project, name, start, until, release=release)
    tree, merged = service.aggregated_tree(page.store, project, name, start, release=release)
    graph = layout(tree, _focus(page))
    base = {"transaction": name, "since": since} | ({"release": release} if release else {})
    profiles = page.store.profiles.list_profiles(project.id, name, since=start, release=release, limit=20)
    return page.render(
        "profiling_transaction.html",
        project=project,
        name=name,
        since=since,
        ranges=RANGES,
        release=release,
        releases=releases,
        totals=totals,
        functions=functions,
        on_stack_only=on_stack_only,
        regression=regression,
        graph=graph,
        merged=merged,
        focus_base=f"/projects/{project.id}/profiling/transaction?" + urlencode(base),
        summary_url=f"/projects/{project.id}/performance/summary?" + urlencode({"transaction": name}),
        profiles=profiles,
    )


def profile_view(page: Page) -> Response:
    """``GET /projects/{project}/profiles/{profile_id}``: one profile's flame graph (its
    transaction's thread, or every thread with ``?threads=all``) and its hottest functions."""
    try:
        project = project_of(page)
        info, profile = page.store.profiles.get_profile(
            project.id, str(page.request.path_params["profile_id"])[:100]
        )
    except NotFound:
        return not_found(page, "Profile")
    all_threads = page.request.query_params.get("threads") == "all"
    tree = flame_tree([profile], all_threads=all_threads)
    graph = layout(tree, _focus(page))
    query: dict[str, Any] = {"threads": "all"} if all_threads else {}
    return page.render(
        "profile.html",
        project=project,
        info=info,
        profile=profile,
        graph=graph,
        all_threads=all_threads,
        focus_base=f"/projects/{project.id}/profiles/{info.profile_id}?" + urlencode(query),
        transaction_url=f"/projects/{project.id}/profiling/transaction?"
        + urlencode({"transaction": info.name, "since": "7d"}),
    )
