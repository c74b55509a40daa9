"""How an issue is read from the ``issues`` table (shared by the issue queries and the
performance-issue queries)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .base import Issue

#: The columns :func:`issue_from_row` reads, in order.
ISSUE_COLUMNS = (
    "id, project_id, grouping_version, grouping_hash, grouping_explanation, title, culprit, type,"
    " value, level, status, resolved_in_release, regressed, first_seen, last_seen, event_count,"
    " first_release, last_release"
)


def issue_from_row(row: Sequence[Any]) -> Issue:
    """The :class:`~.base.Issue` of a row of :data:`ISSUE_COLUMNS`."""
    return Issue(
        id=row[0],
        project_id=row[1],
        grouping_version=row[2],
        grouping_hash=row[3],
        grouping_explanation=json.loads(row[4]),
        title=row[5],
        culprit=row[6],
        type=row[7],
        value=row[8],
        level=row[9],
        status=row[10],
        resolved_in_release=row[11],
        regressed=bool(row[12]),
        first_seen=row[13],
        last_seen=row[14],
        event_count=row[15],
        first_release=row[16],
        last_release=row[17],
    )


#: An event row, in the column order of the digest's batch writer.
EVENT_INSERT = (
    "INSERT INTO events (project_id, event_id, issue_id, timestamp, received_at,"
    " level, title, release, environment, grouping_hash, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
