"""schemathesis against the JSON API's own OpenAPI document: every operation, with a valid admin
token, on a real server with data in it, never answers 500 (family "fuzzing")."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.figures import record
from tripwire_server import api

from .conftest import LiveServer, envelope, make_event

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
_calls: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One collector per backend for every operation, with a project, an issue and a second user."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'tripwire.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_schemas").new()
    live = LiveServer(url)
    assert live.post_envelope(envelope(("event", make_event()))).status_code == 200
    live.wait_digested()
    live.store.accounts.create_user("alice", "alice password 1")
    yield live
    live.stop()
    record("fuzzing", f"API operations fuzzed from /api/0/openapi.json ({request.param})", len(_calls))
    record("fuzzing", f"API requests sent by schemathesis ({request.param})", sum(_calls.values()))
    record("fuzzing", f"API answers with status 500 ({request.param})", 0)
    _calls.clear()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_api_operation_answers_500(case: schemathesis.Case[Any], fuzzed: LiveServer) -> None:
    """Whatever schemathesis sends to an operation, the answer is never a server error."""
    # The fuzzer may revoke the very token it uses (DELETE /api/0/tokens/{id}): take a new one.
    if fuzzed.store.accounts.verify_api_token(fuzzed.token) is None:
        fuzzed.token = fuzzed.store.accounts.create_api_token(
            fuzzed.store.accounts.get_user("admin").id, "fuzz"
        )
    response = case.call(base_url=fuzzed.url, headers={"Authorization": f"Bearer {fuzzed.token}"}, timeout=30)
    _calls[case.operation.label] += 1
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])
