"""N+1 detection: the same normalized statement run sequentially at least five times."""

from __future__ import annotations

from tripwire_server.performance.model import Span, Transaction
from tripwire_server.performance.nplusone import detect, normalize_statement


def _tx(spans: list[Span]) -> Transaction:
    return Transaction(
        1,
        "e" * 32,
        "t" * 32,
        "r" * 16,
        None,
        "/orders",
        "http.server",
        0.0,
        1.0,
        "ok",
        200,
        "prod",
        "",
        spans,
    )


def _db(i: int, sql: str, start: float, end: float, parent: str = "r" * 16) -> Span:
    return Span(f"{i:016x}", parent, "db.sql.query", sql, start, end)


def test_statements_are_normalized_by_replacing_literals() -> None:
    """Numbers, strings, bind parameters and IN lists become placeholders."""
    assert (
        normalize_statement("SELECT * FROM t WHERE id = 42 AND name = 'bob'")
        == "SELECT * FROM t WHERE id = ? AND name = ?"
    )
    assert normalize_statement("select a from t where id in (1, 2, 3)") == "select a from t where id in (?)"
    assert normalize_statement("SELECT * FROM t WHERE id = %s") == normalize_statement(
        "SELECT * FROM t WHERE id = $1"
    )


def test_five_sequential_repeats_are_an_n_plus_one_and_four_are_not() -> None:
    """Five SELECTs by id one after another make one finding; four make none."""
    five = [_db(i, f"SELECT * FROM items WHERE id = {i}", i * 0.01, i * 0.01 + 0.005) for i in range(5)]
    (finding,) = detect(_tx(five))
    assert finding.statement == "SELECT * FROM items WHERE id = ?" and finding.repeats == 5
    assert finding.transaction == "/orders" and len(finding.span_ids) == 5
    assert detect(_tx(five[:4])) == []


def test_concurrent_queries_are_not_an_n_plus_one() -> None:
    """Five overlapping (parallel) queries are not sequential."""
    parallel = [_db(i, f"SELECT * FROM items WHERE id = {i}", 0.0, 0.05) for i in range(5)]
    assert detect(_tx(parallel)) == []


def test_a_different_statement_in_between_breaks_the_run() -> None:
    """Runs count consecutive repeats only: 3 + other + 3 is no N+1."""
    spans = [_db(i, f"SELECT * FROM items WHERE id = {i}", i * 0.01, i * 0.01 + 0.005) for i in range(7)]
    spans[3] = _db(3, "UPDATE carts SET n = 1", 0.03, 0.035)
    assert detect(_tx(spans)) == []


def test_the_same_fingerprint_for_the_same_transaction_and_statement() -> None:
    """Grouping: transaction name and normalized statement, whatever the literal values."""
    a = detect(_tx([_db(i, f"SELECT * FROM t WHERE id = {i}", i, i + 0.5) for i in range(6)]))[0]
    b = detect(_tx([_db(i, f"SELECT * FROM t WHERE id = {i * 7}", i, i + 0.5) for i in range(9)]))[0]
    assert a.fingerprint == b.fingerprint


def test_five_different_statements_under_one_parent_are_no_n_plus_one() -> None:
    """Five sequential queries that differ after normalization are five statements, not a run."""
    spans = [_db(i, f"SELECT * FROM table_{chr(97 + i)} WHERE id = 1", i, i + 0.5) for i in range(5)]
    assert detect(_tx(spans)) == []


def test_one_statement_split_over_two_parents_is_no_n_plus_one() -> None:
    """Repeats are counted under one parent: three here and three there make no finding."""
    spans = [
        _db(i, f"SELECT * FROM t WHERE id = {i}", i, i + 0.5, parent=("a" if i % 2 else "b") * 16)
        for i in range(6)
    ]
    assert detect(_tx(spans)) == []
