"""N+1 query detection: the same database statement run again and again, one after the other.

A transaction whose spans under one parent run the same *normalized* statement (literals
replaced by ``?``) sequentially at least :data:`MIN_REPEATS` times holds an N+1 query. Such a
finding opens a performance issue grouped by transaction name and statement.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re

from .model import Span, Transaction

#: Sequential repetitions of one statement that make an N+1 query (Sentry uses 5 too).
MIN_REPEATS = 5
#: Overlapping spans are concurrent, not sequential; this much overlap (s) is clock noise.
_TOLERANCE = 0.0005

_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_NUMBER = re.compile(r"(?<![\w$])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.IGNORECASE)
_PARAM = re.compile(r"%s|%\(\w+\)s|\$\d+|:\w+")
_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_SPACE = re.compile(r"\s+")


# Statements repeat across transactions: a bounded cache saves most of the regex work.
@functools.lru_cache(maxsize=4096)
def normalize_statement(sql: str) -> str:
    """``SELECT * FROM t WHERE id = 7`` -> ``SELECT * FROM t WHERE id = ?`` (and IN lists to ``(?)``)."""
    text = _STRING.sub("?", sql)
    text = _PARAM.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _IN_LIST.sub("(?)", text)
    return _SPACE.sub(" ", text).strip()[:1000]


@dataclasses.dataclass
class NPlusOne:
    transaction: str
    statement: str
    repeats: int
    total_ms: float
    span_ids: list[str]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha1(f"n+1\x00{self.transaction}\x00{self.statement}".encode()).hexdigest()


def _is_db(span: Span) -> bool:
    return span.op == "db" or span.op.startswith("db.") or span.op.startswith("db:")


def _repeats(spans: list[Span]) -> bool:
    """Whether some normalized statement occurs :data:`MIN_REPEATS` times among ``spans``."""
    counts: dict[str, int] = {}
    for span in spans:
        statement = normalize_statement(span.description)
        n = counts[statement] = counts.get(statement, 0) + 1
        if n >= MIN_REPEATS:
            return True
    return False


def detect(tx: Transaction) -> list[NPlusOne]:
    """The N+1 queries of ``tx``: one finding per statement (its longest run)."""
    by_parent: dict[str | None, list[Span]] = {}
    for span in tx.spans:
        if _is_db(span) and span.description:
            by_parent.setdefault(span.parent_span_id, []).append(span)
    # Most transactions hold no N+1 query: rule them out before sorting, with a count of the
    # (cached) normalized statements under each parent.
    if not any(_repeats(spans) for spans in by_parent.values() if len(spans) >= MIN_REPEATS):
        return []
    best: dict[str, NPlusOne] = {}
    for spans in by_parent.values():
        spans.sort(key=lambda s: s.start_timestamp)
        run: list[Span] = []
        statement = ""
        for item in [*spans, None]:
            current = normalize_statement(item.description) if item is not None else None
            sequential = (
                item is not None
                and run
                and current == statement
                and item.start_timestamp >= run[-1].timestamp - _TOLERANCE
            )
            if sequential and item is not None:
                run.append(item)
                continue
            if len(run) >= MIN_REPEATS:
                found = best.get(statement)
                if found is None or len(run) > found.repeats:
                    best[statement] = NPlusOne(
                        tx.name,
                        statement,
                        len(run),
                        sum(s.duration_ms for s in run),
                        [s.span_id for s in run],
                    )
            run = [item] if item is not None else []
            statement = current or ""
    return list(best.values())
