"""Counters of the requests this process refused before any project was known.

Refusals of a request whose key was checked are counted as outcomes of its project (the queue's
counters, shown on the project's Stats). The rest — a connection cut for a slow or oversized
header, a body trickled too slowly, a connection past ``--max-connections``, a keyless request
that found the bytes-in-flight budget full, a client address held off for being refused too often
(:mod:`~tripwire_server.refusal_limit`) — belong to no project, so they are counted here,
per process, and shown by the health endpoint and the admin's Server page. With several
collector processes (several ``tripwire serve`` behind one PostgreSQL database) each process
counts its own; add them up across processes.

Runs on the event loop only (no locks needed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Every reason counted, with what it means (the order the dashboard shows them in).
REASONS: dict[str, str] = {
    "header_timeout": "408: request line and headers not complete within --header-timeout",
    "body_timeout": "408: body slower than --body-min-rate after --body-grace",
    "header_too_large": "431: request line and headers over --max-request-header-size",
    "over_connections": "503: a request past --max-connections",
    "over_capacity": "503: the bytes-in-flight budget stayed full before the key was known",
    "client_blocked": "429: from an address refused more than --refusal-rate allows (held, unread)",
}


class Refusals:
    """Refusals counted by reason since this process started."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.counts: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.since = clock()

    def add(self, reason: str) -> None:
        if reason not in self.counts:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self.counts[reason] += 1

    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters (safe to hand to a JSON response)."""
        return dict(self.counts)
