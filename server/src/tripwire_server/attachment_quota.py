"""The attachment budget at the door: once a project's budget is used up, refuse attachments early.

Each project may store so many attachment bytes per hour and in total
(:class:`~.store.digest_records.AttachmentBudget`; ``CollectorConfig.attachment_bytes_per_hour`` and
``attachment_bytes_total``, or the project's own values). Two places hold a project to it:

- **the digest** (authoritative): in the transaction that stores attachments it reads and updates
  the project's usage row, keeps what fits and drops the rest, counted as ``attachment`` /
  ``over_budget``; every process sharing the database sees the same usage;
- **ingest** (this module), so that SDKs learn of it and back off: while the usage the digest
  recorded says the budget is used up (no room left, or an attachment had to be dropped for want
  of room this hour / since retention last freed some), an envelope that carries attachments is
  refused with 429
  and ``X-Sentry-Rate-Limits: <seconds>:attachment:project:attachment_budget``, counted as
  ``attachment`` / ``rate_limited``. Sentry SDKs then drop attachments (only) until the time is
  up, and report what they dropped in client reports. Envelopes without attachments pass.

Ingest reads the usage from the store at most once per ``refresh_interval`` per project. The digest
may lag far behind ingest (a flood of large uploads is exactly when it does), so ingest also counts
the attachment bytes it accepted itself this hour, per project: the hour counts as used up when
either figure reaches the budget. The larger of the two is a lower bound of the true usage (never
a double count), so this refuses no earlier than the digest would. With several processes each
adds only its own acceptances to what the digest recorded; the digest stays the authority.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import anyio.to_thread

from .config import CollectorConfig
from .envelope import EnvelopeError, parse_envelope
from .store.base import AttachmentUsage, Project
from .store.queue import IngestQueue

#: ``X-Sentry-Rate-Limits`` reason code of a refusal (the part after the scope).
REASON = "attachment_budget"
#: Seconds SDKs are asked to wait once the total is used up (room comes back with retention).
TOTAL_RETRY = 3600


class Refusal:
    """Why and for how long ingest refuses an envelope; ingest turns it into a 429."""

    def __init__(self, retry: int, message: str) -> None:
        self.retry = retry
        self.message = message
        self.headers = {
            "Retry-After": str(retry),
            "X-Sentry-Rate-Limits": f"{retry}:attachment:project:{REASON}",
        }


class AttachmentQuota:
    """Refuses envelopes with attachments while their project's attachment budget is used up.

    ``count(project_id, category, reason, quantity)`` records outcomes (the intake writer's);
    ``decode(body, encoding)`` decompresses a body queued as received (``kind`` is
    ``"envelope:<encoding>"``); ``clock`` gives Unix time.
    """

    refresh_interval = 1.0

    def __init__(
        self,
        queue: IngestQueue,
        config: CollectorConfig,
        *,
        count: Callable[[int, str, str, int], None],
        decode: Callable[[bytes, str], bytes],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.config = config
        self._count = count
        self._decode = decode
        self._clock = clock
        self._monotonic = monotonic
        self._usage: dict[int, tuple[float, AttachmentUsage]] = {}
        #: project id -> (hour, attachment bytes this process accepted in it)
        self._accepted: dict[int, tuple[float, int]] = {}

    def limits(self, project: Project) -> tuple[int, int]:
        """``(bytes per hour, bytes in total)`` of ``project`` (0: no limit)."""
        per_hour = project.attachment_bytes_per_hour
        total = project.attachment_bytes_total
        return (
            self.config.attachment_bytes_per_hour if per_hour is None else per_hour,
            self.config.attachment_bytes_total if total is None else total,
        )

    def accepted(self, project_id: int, nbytes: int) -> None:
        """Note ``nbytes`` of attachments that ingest acknowledged for ``project_id`` just now."""
        hour = float(int(self._clock() // 3600) * 3600)
        seen_hour, seen = self._accepted.get(project_id, (hour, 0))
        self._accepted[project_id] = (hour, (seen if seen_hour == hour else 0) + nbytes)

    def _accepted_in(self, project_id: int, hour: float) -> int:
        seen_hour, seen = self._accepted.get(project_id, (hour, 0))
        return seen if seen_hour == hour else 0

    async def check(
        self, project: Project, body: bytes, kind: str, attachments: int | None = None
    ) -> Refusal | None:
        """A :class:`Refusal` if ``body`` carries attachments and the budget is used up, else None.

        ``attachments``: how many the body carries, when the caller already knows (ingest counts
        them as the body streams in; decompressing it again here would hold it whole in memory).
        """
        per_hour, total = self.limits(project)
        if per_hour <= 0 and total <= 0:
            return None
        usage = await self._current_usage(project.id)
        now = self._clock()
        hour = float(int(now // 3600) * 3600)
        if usage.hour_used_up(hour, per_hour) or 0 < per_hour <= self._accepted_in(project.id, hour):
            retry = max(1, math.ceil(hour + 3600 - now))
            what = f"{per_hour} attachment bytes per hour"
        elif usage.total_used_up(total):
            retry, what = TOTAL_RETRY, f"{total} attachment bytes stored"
        else:
            return None
        # Only now look inside (decompressing if need be): the common case pays nothing.
        if attachments is None:
            attachments = await anyio.to_thread.run_sync(self._attachments_in, body, kind)
        if attachments == 0:
            return None
        self._count(project.id, "attachment", "rate_limited", attachments)
        return Refusal(retry, f"the project's attachment budget of {what} is used up")

    async def _current_usage(self, project_id: int) -> AttachmentUsage:
        cached = self._usage.get(project_id)
        now = self._monotonic()
        if cached is not None:
            if now - cached[0] < self.refresh_interval:
                return cached[1]
            # Requests arriving while this one reads the store use the value in hand: one read
            # per project and interval, however many requests come in.
            self._usage[project_id] = (now, cached[1])
        usage = await anyio.to_thread.run_sync(self.queue.attachment_usage, project_id)
        self._usage[project_id] = (self._monotonic(), usage)
        return usage

    def _attachments_in(self, body: bytes, kind: str) -> int:
        _kind, _, encoding = kind.partition(":")
        data = self._decode(body, encoding) if encoding else body
        limits = self.config.limits
        try:
            _header, items = parse_envelope(
                data, max_header=limits.max_header_size, max_items=limits.max_items
            )
        except EnvelopeError:
            return 0  # checked at the door already; the digest counts it
        return sum(1 for item in items if item.type == "attachment")


__all__ = ["AttachmentQuota", "Refusal"]
