"""A Starlette app under uvicorn, profiled by a Sentry-protocol SDK, reports to the collector: its
deliberately slow function tops the functions table of its route (CLI and API), waiting frames
stay out of the ranking, hostile function names come back as text, and every profile is linked to
its transaction. The client side is parametrized (services.CLIENTS): sentry-sdk's transaction
profiles, its continuous profiler, and tripwire's own transaction profiles."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tripwire_server.profiling.idle import is_idle

from ..conftest import LiveServer, PgSchemas
from .services import CLIENTS, HOSTILE_NAME, RELEASE, SLOW_FUNCTION, ProfiledService

# One profiled scenario per backend and client (about 5 s each: a uvicorn service, 8 requests).
pytestmark = pytest.mark.slow

#: The kind of stored profile each client produces.
KINDS = {
    "sentry": "transaction",
    "sentry-continuous": "chunk",
    "tripwire": "transaction",
    "tripwire-continuous": "chunk",
}
#: The item type each client sends.
ITEM_TYPES = {
    "sentry": "profile",
    "sentry-continuous": "profile_chunk",
    "tripwire": "profile",
    "tripwire-continuous": "profile_chunk",
}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One collector per backend for the whole module."""
    if request.param == "sqlite":
        live = LiveServer(f"sqlite:///{tmp_path_factory.mktemp('prof') / 'tripwire.sqlite3'}")
        yield live
        live.stop()
        return
    schemas: PgSchemas = request.getfixturevalue("pg_schemas")
    url = schemas.new()
    live = LiveServer(url)
    yield live
    live.stop()
    schemas.drop(url)


@pytest.fixture(scope="module", params=CLIENTS)
def profiled(server: LiveServer, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The app, profiled by one client into a project of its own, after its requests."""
    client: str = request.param
    project = server.store.accounts.create_project(f"shop-{client}")
    server.state.projects.invalidate()
    service = ProfiledService(client, project.dsn(server.url))
    try:
        for path in ("/crunch", "/crunch", "/crunch", "/wait", "/wait", "/hostile"):
            assert service.get(path).status_code == 200
    finally:
        service.stop()
    server.wait_digested()
    yield {"client": client, "project": project.name, "project_id": project.id}


def _cli(server: LiveServer, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    from tripwire_server.cli import main

    assert main([*args, "--database-url", server.config.effective_database_url, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _functions(server: LiveServer, project: str, transaction: str) -> list[dict[str, Any]]:
    return server.api(  # type: ignore[no-any-return]
        f"/api/0/projects/{project}/profiling/functions/", params={"transaction": transaction}
    )


def test_the_slow_function_tops_the_functions_table_of_its_route(
    server: LiveServer, profiled: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`tripwire profile functions --transaction /crunch` lists crunch_numbers first, with most of
    the route's samples; the shares are fractions, by self share; the API serves the same list."""
    rows = _cli(
        server, capsys, "profile", "functions", "--project", profiled["project"], "--transaction", "/crunch"
    )
    top = rows[0]
    assert (top["function"], top["module"]) == (SLOW_FUNCTION, "__main__")
    assert top["file"].endswith("profiled_service.py")  # SDKs differ in how much of the path they send
    assert top["self_share"] >= 0.5 and top["samples"] >= 3
    assert set(top) == {"function", "module", "file", "self_share", "total_share", "samples"}
    shares = [r["self_share"] for r in rows]
    assert shares == sorted(shares, reverse=True)
    assert all(0.0 <= r["self_share"] <= r["total_share"] <= 1.0 for r in rows)
    api_rows = _functions(server, profiled["project"], "/crunch")
    assert [(r["function"], r["self_share"]) for r in api_rows[: len(rows)]] == [
        (r["function"], r["self_share"]) for r in rows
    ]
    by_release = _cli(
        server, capsys, "profile", "functions", "--project", profiled["project"], "--transaction", "/crunch",
        "--release", RELEASE,
    )  # fmt: skip
    assert by_release[0]["function"] == SLOW_FUNCTION


def test_a_waiting_request_ranks_no_idle_frame(server: LiveServer, profiled: dict[str, Any]) -> None:
    """/wait only awaits: the event loop's waiting frame is on the stack, but no idle frame has self
    samples, so the loop does not top the table with a 100 % self share."""
    rows = _functions(server, profiled["project"], "/wait")
    assert rows, "no profile samples of /wait"
    assert not [r for r in rows if r["samples"] and is_idle(r["module"], r["function"])]
    totals, _rows = server.store.profiles.profile_functions(profiled["project_id"], "/wait", 0.0, 2e9)
    assert totals.samples > 0 and totals.idle > totals.samples / 2


def test_hostile_function_names_come_back_as_text(server: LiveServer, profiled: dict[str, Any]) -> None:
    """A function named with markup is listed under its exact name, and its profile's page shows it
    escaped, never as markup."""
    rows = _functions(server, profiled["project"], "/hostile")
    assert rows, "no profile samples of /hostile"
    assert rows[0]["function"] == HOSTILE_NAME
    (profile,) = server.api(
        f"/api/0/projects/{profiled['project']}/profiling/profiles/", params={"transaction": "/hostile"}
    )
    page = _page(server, f"/projects/{profiled['project_id']}/profiles/{profile['profile_id']}")
    assert "<script>window.__xss" not in page and "<img src=x" not in page
    assert html.escape(HOSTILE_NAME, quote=False)[:40] in page.replace("&#34;", '"').replace("&quot;", '"')


def test_every_profile_is_linked_to_its_transaction_and_counted(
    server: LiveServer, profiled: dict[str, Any]
) -> None:
    """Each request's profile is stored with its transaction's event and trace id (a chunk's samples
    split by transaction); the transaction summary links its samples to their flame graphs; the
    items are counted as accepted under their own type."""
    project = profiled["project"]
    profiles = server.api(f"/api/0/projects/{project}/profiling/profiles/", params={"transaction": "/crunch"})
    assert len(profiles) == 3
    assert {p["kind"] for p in profiles} == {KINDS[profiled["client"]]}
    detail = server.api(f"/api/0/projects/{project}/performance/", params={"transaction": "/crunch"})
    samples = {s["event_id"]: s["trace_id"] for s in detail["samples"]}
    assert {p["event_id"]: p["trace_id"] for p in profiles} == samples
    summary = _page(server, f"/projects/{profiled['project_id']}/performance/summary?transaction=/crunch")
    links = re.findall(r'<a class="profile-link" href="([^"]+)">flame graph</a>', summary)
    assert len(links) == 3
    graph = _page(server, links[0])
    assert '<svg class="flamegraph"' in graph and f">{SLOW_FUNCTION} (__main__)<" in graph
    stats = server.api(f"/api/0/projects/{project}/stats/")
    counted = {(r["category"], r["reason"]): r["quantity"] for r in stats}
    assert counted[(ITEM_TYPES[profiled["client"]], "accepted")] >= 1
    assert not [key for key in counted if key[0] in ITEM_TYPES.values() and key[1] != "accepted"]


def _page(server: LiveServer, path: str) -> str:
    admin = server.store.accounts.get_user("admin")
    token = server.store.accounts.create_web_session(admin.id)
    response = server.http.get(path, headers={"Cookie": f"tripwire_session={token}"})
    assert response.status_code == 200, response.text[:300]
    return response.text
