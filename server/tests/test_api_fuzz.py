"""schemathesis against the JSON API's own OpenAPI document: every operation, with a valid admin
token, on a real server with data in it, never answers 500 (family "fuzzing")."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.transport.requests import ManagedCookiesSession

from tests.support.figures import record
from tripwire_server import api

from .conftest import PG_ENV, LiveServer, envelope, make_event

pytestmark = pytest.mark.reliability

#: Built from the same table the routes are, so a new endpoint is fuzzed without editing this file.
schema = schemathesis.openapi.from_dict(api.openapi())
# Valid and invalid inputs alike (wrong types, missing fields, NUL characters, huge numbers).
schema.config.generation.update(
    # (By value: under our python_version 3.10, mypy sees StrEnum's members as plain str.)
    modes=[schemathesis.GenerationMode("positive"), schemathesis.GenerationMode("negative")],
    allow_x00=True,
    unique_inputs=True,
)
#: Examples per operation: enough to hit the edges schemathesis aims at, bounded to keep the whole
#: suite at a few seconds of requests.
EXAMPLES = 15
#: Requests per backend and operation, for the figures.
_calls: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def _collector(url: str) -> LiveServer:
    live = LiveServer(url)
    assert live.post_envelope(envelope(("event", make_event()))).status_code == 200
    live.wait_digested()
    live.store.accounts.create_user("alice", "alice password 1")
    return live


# The one parameter gives each operation's test a node id of its own ("...[GET /api/0/status/][each
# backend]"): schemathesis names the tests by operation but gives them all the function's node id,
# and pytest-xdist tells tests apart by node id, so it ran one operation of the 50.
@pytest.fixture(scope="module", params=["each backend"])
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, LiveServer]]:
    """One collector per backend (PostgreSQL when TRIPWIRE_TEST_DATABASE_URL is set) for every
    operation, each with a project, an issue and a second user.

    Every generated case goes to each backend in turn: schemathesis' generation is most of this
    file's CPU, and it runs once instead of once per backend (derandomized, it drew the same cases
    for both then, except where answers it feeds back into generation differed: 183 of 1503).
    Each backend still gets every operation's 15 generated and all its coverage cases. (Not a
    ``postgres``-marked parameter any more: PostgreSQL is fuzzed whenever it is configured.)
    """
    servers = {"sqlite": _collector(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'tripwire.sqlite3'}")}
    if os.environ.get(PG_ENV):
        servers["postgresql"] = _collector(request.getfixturevalue("pg_schemas").new())
    yield servers
    for backend, live in servers.items():
        live.stop()
        calls = _calls.pop(backend, collections.Counter())
        record("fuzzing", f"API operations fuzzed from /api/0/openapi.json ({backend})", len(calls))
        record("fuzzing", f"API requests sent by schemathesis ({backend})", sum(calls.values()))
        record("fuzzing", f"API answers with status 500 ({backend})", 0)


@pytest.fixture(scope="module")
def session() -> Iterator[ManagedCookiesSession]:
    """One HTTP session (keep-alive) for all the requests, instead of the new session and connection
    schemathesis makes per call (and the proxy settings it reads from the environment each time).
    No default headers, so a request carries exactly what it did without a session; schemathesis
    drops a ManagedCookiesSession's cookies after each call, so no answer leaks into the next one.
    """
    with ManagedCookiesSession() as http:
        http.headers.clear()
        http.trust_env = False
        yield http


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_api_operation_answers_500(
    case: schemathesis.Case[Any], fuzzed: dict[str, LiveServer], session: ManagedCookiesSession
) -> None:
    """Whatever schemathesis sends to an operation, no backend answers with a server error."""
    for backend, live in fuzzed.items():
        # The fuzzer may revoke the very token it uses (DELETE /api/0/tokens/{id}): take a new one.
        if live.store.accounts.verify_api_token(live.token) is None:
            live.token = live.store.accounts.create_api_token(
                live.store.accounts.get_user("admin").id, "fuzz"
            )
        response = case.call(
            base_url=live.url, headers={"Authorization": f"Bearer {live.token}"}, timeout=30, session=session
        )
        _calls[backend][case.operation.label] += 1
        assert response.status_code < 500, (
            backend,
            case.method,
            case.formatted_path,
            case.body,
            response.text[:500],
        )
