"""PostgreSQL advisory locks, scoped to the schema the store lives in.

An advisory lock key is shared by the whole database. Two collectors (or two test runs) keeping their
tables in different schemas of one database must neither wait for each other's locks nor skip work
because the other holds one (the monitor clock's try-lock), so every key is hashed together with the
schema's name. ``?`` is the key (a number or a text), given as the statement's parameter.
"""

from __future__ import annotations

#: SQL for the lock key of ``?`` in the current schema, e.g. ``SELECT pg_advisory_xact_lock({SCOPED_KEY})``.
SCOPED_KEY = "hashtextextended(coalesce(current_schema(), '') || ':' || ?::text, 0)"
