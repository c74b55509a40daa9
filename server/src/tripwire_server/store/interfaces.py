"""The narrow views of the store that its consumers depend on.

:class:`~.base.Store` satisfies each of them; a consumer that only queues, or only digests, names
the few methods it calls, so a reader (and a test double, where no real database fits) sees what
it touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .base import AttachmentUsage, IntakeRow, Project, ProjectKey
from .digest_records import Processor


class IntakeQueue(Protocol):
    """What ingest writes: the durable queue and the refusal counters (:mod:`..queue_writer`)."""

    #: Bytes from which a body is kept as a file (:meth:`keep_as_file`); None: never.
    file_from: int | None

    def keep_as_file(self, data: bytes) -> str | None:
        """Write ``data`` durably to a file of its own; its name, or None to queue it in the row."""

    def discard_files(self, names: Sequence[str]) -> None:
        """Remove files of :meth:`keep_as_file` whose rows were not committed."""

    def enqueue(self, rows: Sequence[IntakeRow]) -> None:
        """Commit ``rows`` to the ingest queue in one transaction."""

    def queue_depth(self) -> int:
        """Envelopes waiting to be digested."""

    def add_outcomes(self, rows: Sequence[tuple[int, float, str, str, str, int]]) -> None:
        """Add ``(project_id, hour, source, category, reason, quantity)`` to the counters."""


class ProjectKeys(Protocol):
    """What the ingest key cache reads (:class:`..state.ProjectCache`)."""

    def list_projects(self) -> list[Project]:
        """Every project."""

    def list_project_keys(self, project_id: int | None = None) -> list[ProjectKey]:
        """The DSN keys that are not revoked."""


class AttachmentUsageSource(Protocol):
    """What the attachment budget reads (:mod:`..attachment_quota`)."""

    def attachment_usage(self, project_id: int) -> AttachmentUsage:
        """The project's stored attachment bytes, this hour and in total."""


class DigestTarget(Protocol):
    """What the digester drives (:mod:`..digest.worker`): batches out of the queue, and retention."""

    def queue_depth(self) -> int:
        """Envelopes waiting to be digested."""

    def digest_batch(self, limit: int, processor: Processor) -> int:
        """Digest up to ``limit`` queued envelopes with ``processor`` in one transaction."""

    def apply_retention(
        self, *, default_days: int, default_max_events: int, now: float, chunk: int = 5000
    ) -> int:
        """Delete events past their project's retention; returns how many."""

    def apply_perf_retention(self, *, rollup_days: int, sample_days: int, now: float) -> int:
        """Delete performance data past its retention; returns rows deleted."""

    def apply_profile_retention(self, *, days: int, now: float) -> int:
        """Delete profiles past their retention; returns rows deleted."""
