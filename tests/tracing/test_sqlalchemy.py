"""SQLAlchemy core and ORM statements are ``db`` spans (from its cursor events) against a real SQLite
file and the PostgreSQL on this machine: the statement without parameter values, db.system, db.name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import tripwire
import tripwire.testing
from tripwire.reporters.capture import CapturedEvents

PG_ENV = "TRIPWIRE_TEST_DATABASE_URL"


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "tripwire_sa_items"
    __table_args__ = {"prefixes": ["TEMPORARY"]}  # each connection's own table
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


def _db_spans(events: CapturedEvents) -> list[dict[str, Any]]:
    tripwire.flush(5)
    (txn,) = events.transactions
    return [s for s in txn["spans"] if s["op"] == "db"]


def test_core_statements_on_sqlite_are_spans_without_values(traced: CapturedEvents, tmp_path: Path) -> None:
    """Core statements on a SQLite file are one db span each (not one more from sqlite3 underneath),
    with ? placeholders, db.system sqlite and the database file; values never appear; a failing
    statement's span is internal_error."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with tripwire.start_span(op="task", name="root"), engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (name TEXT)"))
        conn.execute(sa.text("INSERT INTO items VALUES (:name)"), {"name": "top-secret-value"})
        assert conn.execute(sa.text("SELECT count(*) FROM items")).scalar() == 1
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT * FROM no_such_table"))
    engine.dispose()
    spans = _db_spans(traced)
    assert [s["description"] for s in spans] == [
        "CREATE TABLE items (name TEXT)",
        "INSERT INTO items VALUES (?)",
        "SELECT count(*) FROM items",
        "SELECT * FROM no_such_table",
    ]
    assert spans[0]["data"] == {"db.system": "sqlite", "db.name": str(tmp_path / "shop.db")}
    assert [s["status"] for s in spans] == ["ok", "ok", "ok", "internal_error"]
    assert "top-secret-value" not in str(traced.transactions)


def test_without_tracing_sqlalchemy_is_not_hooked(tmp_path: Path) -> None:
    """With tracing off the integration is not installed: the engine has no tripwire listener."""
    from sqlalchemy.engine import Engine

    from tripwire.integrations.sqlalchemy import _before

    with tripwire.testing.capture_events():
        assert not sa.event.contains(Engine, "before_cursor_execute", _before)


@pytest.mark.postgres
def test_orm_queries_on_postgresql_are_spans(traced: CapturedEvents) -> None:
    """ORM inserts and queries through psycopg on PostgreSQL are db spans with %(name)s placeholders,
    db.system postgresql, db.name the database's; psycopg's own integration does not add a second span."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (./scripts/test sets it when PostgreSQL runs here)")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with tripwire.start_span(op="task", name="root"), engine.connect() as conn:
        Base.metadata.create_all(conn)
        with Session(bind=conn) as session:
            session.add(Item(name="pg-secret-value"))
            session.flush()
            assert session.scalars(sa.select(Item).where(Item.name == "pg-secret-value")).one().id
    engine.dispose()
    spans = _db_spans(traced)
    descriptions = [s["description"] for s in spans]
    assert any(d.startswith("INSERT INTO tripwire_sa_items") for d in descriptions)
    select = next(s for s in spans if "FROM tripwire_sa_items" in s["description"])
    assert "%(name_1)s" in select["description"]
    assert select["data"] == {"db.system": "postgresql", "db.name": urlsplit(url).path.lstrip("/")}
    assert len(descriptions) == len(set(descriptions))  # one span per statement, not two
    assert "pg-secret-value" not in str(traced.transactions)
