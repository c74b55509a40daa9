"""tripwire.delivery.spool: whatever lies in a spool directory, reading it never breaks the sender."""

from __future__ import annotations

import json
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.figures import record
from tripwire.delivery.spool import SUFFIX, Spool
from tripwire.reporters.http import Payload

_tried = {"files": 0}


@pytest.fixture(scope="module", autouse=True)
def _record_figures() -> object:
    yield None
    if _tried["files"]:
        record(
            "fuzzing",
            "corrupt or hostile spool files read by the SDK's sender",
            _tried["files"],
            "tests/delivery/test_spool.py: each is a payload, or dropped with a warning; never a crash",
        )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_META = st.fixed_dictionaries(
    {},
    optional={
        "url": _JSON,
        "categories": _JSON,
        "kind": _JSON,
        "low_priority": _JSON,
        "count_drops": _JSON,
        "meta": _JSON,
        "attempts": _JSON,
    },
)


@st.composite
def _files(draw: st.DrawFn) -> bytes:
    """Raw bytes, or a well-formed file with hostile metadata, or a valid one cut short."""
    shape = draw(st.sampled_from(["raw", "meta", "cut"]))
    if shape == "raw":
        return draw(st.binary(max_size=300))
    meta = draw(_META | _JSON)
    data = json.dumps(meta).encode() + b"\n" + zlib.compress(draw(st.binary(max_size=100)))
    if shape == "cut":
        return data[: draw(st.integers(min_value=0, max_value=len(data)))]
    return data


@pytest.mark.reliability
@settings(max_examples=150, deadline=None)
@given(content=_files())
def test_any_spool_file_is_a_payload_or_dropped(content: bytes) -> None:
    """A spool file (written by an older version, cut by a crash, or planted) is either read back
    as a payload with sane fields or dropped, with a warning and counted: claim_oldest and Payload.from_spool
    never raise anything but the ValueError the sender counts, and the file never comes back."""
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / f"00000000000000000001-1-000001{SUFFIX}").write_bytes(content)
        corrupt: list[None] = []
        spool = Spool(directory, 1 << 20, on_corrupt=lambda: corrupt.append(None))
        claimed = spool.claim_oldest()
        # An unreadable file is dropped and reported (the reporter counts it as internal_error).
        assert (claimed is None) == (len(corrupt) == 1)
        if claimed is not None:
            path, meta, body = claimed
            assert isinstance(meta, dict) and isinstance(body, bytes)
            try:
                payload = Payload.from_spool(meta, body, path)
            except ValueError:
                pass
            else:
                assert isinstance(payload.url, str) and isinstance(payload.attempts, int)
                assert all(isinstance(k, str) and isinstance(v, int) for k, v in payload.categories.items())
            spool.release(path, delivered=True)
        assert spool.claim_oldest() is None
        assert list(Path(directory).iterdir()) == []
    _tried["files"] += 1


def test_a_payload_survives_the_round_trip_through_the_spool(tmp_path: Path) -> None:
    """What a reporter writes to the spool reads back as the same payload, attempts included."""
    spool = Spool(str(tmp_path), 1 << 20)
    original = Payload(
        "http://h/api/1/envelope/",
        b"body",
        {"session": 3},
        kind="sessions",
        low_priority=True,
        meta={"header": {"a": 1}},
        attempts=2,
    )
    assert spool.write(original.to_spool(), original.body)
    claimed = spool.claim_oldest()
    assert claimed is not None
    payload = Payload.from_spool(claimed[1], claimed[2], claimed[0])
    assert (payload.url, payload.body, payload.categories, payload.kind) == (
        original.url,
        original.body,
        original.categories,
        original.kind,
    )
    assert (payload.low_priority, payload.meta) == (True, {"header": {"a": 1}})
    assert (payload.attempts, payload.claimed_attempts) == (2, 2)
