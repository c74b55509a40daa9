"""What is left of a project's attachment budget, taken attachment by attachment.

One rule for two places: the digest's transaction, which decides what is stored (reading the usage
row locked), and the look-ahead before it, which writes a large attachment to its file
(store/blob_files.py) only if it may fit: one over the budget would be written and synced,
megabytes of them, only for the transaction to drop it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .base import AttachmentUsage, hour_start
from .digest_records import AttachmentBudget

if TYPE_CHECKING:
    from .database import Cursor


@dataclasses.dataclass
class AttachmentRoom:
    """A project's budget (0: no limit) and its usage row, as attachments are taken in order."""

    per_hour: int
    total: int
    #: The usage row (the fields of :class:`~.base.AttachmentUsage`, counted on from there).
    hour: float = 0.0
    hour_bytes: int = 0
    stored_bytes: int = 0
    full_hour: float = 0.0
    total_full: bool = False

    def take(self, received_at: float, size: int) -> bool:
        """True if ``size`` bytes received at ``received_at`` fit (they are then counted); False
        marks the hour or the total full, so that ingest refuses attachments until there is room."""
        hour = hour_start(received_at)
        if hour > self.hour:
            self.hour, self.hour_bytes = hour, 0
        over_hour = self.per_hour > 0 and self.hour_bytes + size > self.per_hour
        over_total = self.total > 0 and self.stored_bytes + size > self.total
        if over_hour:
            self.full_hour = self.hour
        if over_total:
            self.total_full = True
        if over_hour or over_total:
            return False
        self.hour_bytes += size
        self.stored_bytes += size
        return True

    def usage_row(self) -> tuple[float, int, int, float, int]:
        """``(hour, hour_bytes, stored_bytes, full_hour, total_full)`` as the table holds them."""
        return (self.hour, self.hour_bytes, self.stored_bytes, self.full_hour, int(self.total_full))


def read_usage(c: Cursor, project_id: int, lock: str = "") -> AttachmentUsage:
    """The project's usage row (none yet: nothing used). ``lock``: the database's ``FOR UPDATE``
    clause, in the transaction that writes."""
    row = c.one(
        "SELECT hour, hour_bytes, stored_bytes, full_hour, total_full FROM attachment_usage"
        " WHERE project_id = ?" + lock,
        (project_id,),
    )
    if row is None:
        return AttachmentUsage(0.0, 0, 0)
    return AttachmentUsage(float(row[0]), int(row[1]), int(row[2]), float(row[3]), bool(row[4]))


def read_room(c: Cursor, project_id: int, default: AttachmentBudget, lock: str = "") -> AttachmentRoom:
    """The project's room: its own budget or ``default``, and its usage (see :func:`read_usage`)."""
    usage = read_usage(c, project_id, lock)
    own = c.one(
        "SELECT attachment_bytes_per_hour, attachment_bytes_total FROM projects WHERE id = ?",
        (project_id,),
    )
    per_hour, total = own if own is not None else (None, None)
    return AttachmentRoom(
        default.per_hour if per_hour is None else int(per_hour),
        default.total if total is None else int(total),
        *dataclasses.astuple(usage),
    )


__all__ = ["AttachmentRoom", "read_room", "read_usage"]
