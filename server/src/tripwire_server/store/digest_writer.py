"""Writes what one digested batch produced: events, issues and every counter, in one transaction."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ..versions import is_at_or_after
from .attachment_room import AttachmentRoom, read_room
from .base import hour_start
from .digest_records import AttachmentBudget, AttachmentRow, DigestedEvent, EnvelopeResult
from .outcomes import upsert_outcomes

if TYPE_CHECKING:
    from .database import Cursor, Database


class DigestWriter:
    """Writes the records of one digested batch: events, issues and every counter.

    Rows are touched in a fixed order (issues by key, then counters by key) so that several
    PostgreSQL processes writing at once cannot deadlock each other.
    """

    def __init__(self, db: Database, c: Cursor, budget: AttachmentBudget) -> None:
        self.db = db
        self.c = c
        #: The collector's default attachment budget (projects may have their own).
        self.budget = budget
        # What the batch changed, for the alert rules evaluated in the same transaction.
        self.stored: list[tuple[DigestedEvent, int]] = []
        #: Attachment bytes this batch stored in the database (the digester paces itself by them;
        #: bytes kept as files are not written under the database's lock).
        self.attachment_bytes = 0
        #: The attachment files (store/blob_files.py) that rows of this batch name.
        self.files_kept: set[str] = set()
        self.new_issues: dict[int, DigestedEvent] = {}
        self.regressed: dict[int, DigestedEvent] = {}

    def write(self, results: list[EnvelopeResult]) -> None:
        c = self.c
        now = time.time()
        outcomes: dict[tuple[int, float, str, str, str], int] = {}

        def count(project_id: int, category: str, reason: str, n: int = 1) -> None:
            key = (project_id, hour_start(now), "intake", category, reason)
            outcomes[key] = outcomes.get(key, 0) + n

        events: list[DigestedEvent] = []
        origin: list[int] = []  # the index in ``results`` of each event's envelope
        seen: set[tuple[int, str]] = set()
        for index, result in enumerate(results):
            for o in result.outcomes:
                key = (o.project_id, o.hour, o.source, o.category, o.reason)
                outcomes[key] = outcomes.get(key, 0) + o.quantity
            for event in result.events:
                if (event.project_id, event.event_id) in seen:
                    count(event.project_id, "event", "duplicate")
                    continue
                seen.add((event.project_id, event.event_id))
                events.append(event)
                origin.append(index)

        issues = self._issues(events, now)
        stored = self.stored = self._events(events, issues, count)
        self._counters(stored, issues, now)
        self._sessions(results)
        # The events each envelope stored itself: only those take new attachments.
        inserted = {id(e) for e, _issue in stored}
        fresh: list[set[tuple[int, str]]] = [set() for _ in results]
        for event, index in zip(events, origin, strict=True):
            if id(event) in inserted:
                fresh[index].add((event.project_id, event.event_id))
        self._attachments(results, fresh, count)
        upsert_outcomes(c, sorted((*k, v) for k, v in outcomes.items()))

    def _attachments(
        self, results: list[EnvelopeResult], fresh: list[set[tuple[int, str]]], count: Any
    ) -> None:
        """Store the attachments that belong to a new event and fit in their project's budget;
        count the others (``duplicate``, ``over_budget``)."""
        pending = [(i, a) for i, r in enumerate(results) for a in r.attachments]
        if not pending:
            return
        # An attachment whose event is already stored (a resend, or a second envelope with the
        # same event id) would only take room again: it is dropped.
        stored_before = self.c.stored_keys(
            "events",
            "event_id",
            {(a.project_id, a.event_id) for i, a in pending if (a.project_id, a.event_id) not in fresh[i]},
        )
        kept: list[AttachmentRow] = []
        for i, a in pending:
            key = (a.project_id, a.event_id)
            if key not in fresh[i] and key in stored_before:
                count(a.project_id, "attachment", "duplicate")
            else:
                kept.append(a)
        if not kept:
            return
        c = self.c
        rooms: dict[int, AttachmentRoom] = {}
        # Projects in id order: two processes lock their usage rows in the same order.
        for project_id in sorted({a.project_id for a in kept}):
            c.ex(
                "INSERT INTO attachment_usage (project_id, hour, hour_bytes, stored_bytes)"
                " VALUES (?, 0, 0, 0) ON CONFLICT (project_id) DO NOTHING",
                (project_id,),
            )
            rooms[project_id] = read_room(c, project_id, self.budget, self.db.for_update)
        rows = []
        for a in kept:
            if not rooms[a.project_id].take(a.received_at, a.size):
                count(a.project_id, "attachment", "over_budget")
                continue
            if a.data_file is None:
                self.attachment_bytes += a.size
            else:
                self.files_kept.add(a.data_file)
            count(a.project_id, "attachment", "accepted")
            rows.append(
                (a.project_id, a.event_id, a.filename, a.content_type, a.attachment_type, a.size)
                + (a.data, a.data_file, a.received_at)
            )
        c.many(
            "INSERT INTO attachments (project_id, event_id, filename, content_type,"
            " attachment_type, size, data, data_file, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        c.many(
            "UPDATE attachment_usage SET hour = ?, hour_bytes = ?, stored_bytes = ?, full_hour = ?,"
            " total_full = ? WHERE project_id = ?",
            [(*room.usage_row(), p) for p, room in sorted(rooms.items())],
        )

    def _legacy_issues(
        self, first: dict[tuple[int, str], DigestedEvent], issues: dict[tuple[int, str], list[Any]]
    ) -> None:
        """Keys without an issue join the issue of their previous-version key, if there is one:
        a new grouping version never splits an existing issue."""
        for key, e in sorted(first.items()):
            if key in issues or not e.legacy_hash or e.legacy_hash == e.grouping_hash:
                continue
            row = self.c.one(
                "SELECT id, status, resolved_in_release FROM issues"
                " WHERE project_id = ? AND grouping_hash = ?",
                (e.project_id, e.legacy_hash),
            )
            if row is not None:
                issues[key] = list(row)

    def _issues(self, events: list[DigestedEvent], now: float) -> dict[tuple[int, str], list[Any]]:
        """Find or create the issue of every grouping key: key -> [id, status, resolved_in]."""
        c = self.c
        first: dict[tuple[int, str], DigestedEvent] = {}
        for event in events:
            first.setdefault((event.project_id, event.grouping_hash), event)
        issues: dict[tuple[int, str], list[Any]] = {}
        # Usually every issue exists already: one query finds them all (a round trip per issue
        # adds up on PostgreSQL). Only the missing ones are inserted, one by one, in key order.
        by_project: dict[int, list[str]] = {}
        for project_id, grouping_hash in first:
            by_project.setdefault(project_id, []).append(grouping_hash)
        for project_id, hashes in by_project.items():
            for start in range(0, len(hashes), 500):
                chunk = hashes[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in c.all(
                    "SELECT grouping_hash, id, status, resolved_in_release FROM issues"
                    f" WHERE project_id = ? AND grouping_hash IN ({marks})",
                    [project_id, *chunk],
                ):
                    issues[(project_id, row[0])] = list(row[1:])
        self._legacy_issues(first, issues)
        for key in sorted(k for k in first if k not in issues):
            e = first[key]
            row = c.one(
                "INSERT INTO issues (project_id, grouping_version, grouping_hash,"
                " grouping_explanation, title, culprit, type, value, level, first_seen, last_seen,"
                " first_release, last_release)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (project_id, grouping_hash) DO NOTHING"
                " RETURNING id, status, resolved_in_release",
                (
                    e.project_id,
                    e.grouping_version,
                    e.grouping_hash,
                    json.dumps(e.grouping_explanation),
                    e.title,
                    e.culprit,
                    e.type,
                    e.value,
                    e.level,
                    e.timestamp,
                    e.timestamp,
                    e.release,
                    e.release,
                ),
            )
            if row is not None:
                self.new_issues[row[0]] = e
                c.ex(
                    "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                    (row[0], now, "first_seen", f"event {e.event_id}"),
                )
            else:
                row = c.one(
                    "SELECT id, status, resolved_in_release FROM issues"
                    " WHERE project_id = ? AND grouping_hash = ?",
                    key,
                )
            issues[key] = list(row)
        return issues

    def _events(
        self,
        events: list[DigestedEvent],
        issues: dict[tuple[int, str], list[Any]],
        count: Any,
    ) -> list[tuple[DigestedEvent, int]]:
        c = self.c
        stored: list[tuple[DigestedEvent, int]] = []
        # Arrival order, so that row ids order events as they came. Two processes inserting the
        # same event ids in opposite orders could deadlock; PostgreSQL then aborts one of them
        # and its digester retries the whole batch.
        rows = [
            (
                e.project_id,
                e.event_id,
                issues[(e.project_id, e.grouping_hash)][0],
                e.timestamp,
                e.received_at,
                e.level,
                e.title,
                e.release,
                e.environment,
                e.grouping_hash,
                e.data,
            )
            for e in events
        ]
        inserted = self.db.insert_events(c, rows)
        for e, row, done in zip(events, rows, inserted, strict=True):
            if done:
                count(e.project_id, "event", "accepted")
                stored.append((e, row[2]))
            else:
                count(e.project_id, "event", "duplicate")
        return stored

    def _counters(
        self,
        stored: list[tuple[DigestedEvent, int]],
        issues: dict[tuple[int, str], list[Any]],
        now: float,
    ) -> None:
        c = self.c
        least, greatest = self.db.least, self.db.greatest
        per_issue: dict[int, list[Any]] = {}
        tags: dict[tuple[int, str, str], list[float]] = {}
        hourly: dict[tuple[int, int, float], int] = {}
        releases: dict[tuple[int, str], list[float]] = {}
        by_id = {v[0]: v for v in issues.values()}
        regress: dict[int, str] = {}
        for e, issue_id in stored:
            agg = per_issue.setdefault(issue_id, [0, e.timestamp, e.timestamp, None, 0.0])
            agg[0] += e.occurrences
            agg[1] = min(agg[1], e.timestamp)
            agg[2] = max(agg[2], e.timestamp)
            if e.release and e.received_at >= agg[4]:
                agg[3], agg[4] = e.release, e.received_at
            for key, value in e.tags:
                t = tags.setdefault((issue_id, key, value), [0, e.timestamp, e.timestamp])
                t[0] += 1
                t[1] = min(t[1], e.timestamp)
                t[2] = max(t[2], e.timestamp)
            hour = hour_start(e.received_at)
            for k in ((e.project_id, issue_id, hour), (e.project_id, 0, hour)):
                hourly[k] = hourly.get(k, 0) + e.occurrences
            if e.release:
                r = releases.setdefault((e.project_id, e.release), [0, e.timestamp, e.timestamp])
                r[0] += e.occurrences
                r[1] = min(r[1], e.timestamp)
                r[2] = max(r[2], e.timestamp)
            _id, status, resolved_in = by_id[issue_id]
            if status == "resolved" and issue_id not in regress:
                if resolved_in is None:
                    regress[issue_id] = f"event {e.event_id}"
                    self.regressed[issue_id] = e
                elif e.release and is_at_or_after(e.release, resolved_in):
                    regress[issue_id] = f"event {e.event_id} in release {e.release}"
                    self.regressed[issue_id] = e
        c.many(
            f"UPDATE issues SET event_count = event_count + ?,"
            f" first_seen = {least}(first_seen, ?), last_seen = {greatest}(last_seen, ?),"
            f" last_release = COALESCE(?, last_release) WHERE id = ?",
            [(a[0], a[1], a[2], a[3], i) for i, a in sorted(per_issue.items())],
        )
        for issue_id, detail in sorted(regress.items()):
            c.ex(
                "UPDATE issues SET status = 'unresolved', regressed = 1, resolved_in_release = NULL"
                " WHERE id = ?",
                (issue_id,),
            )
            c.ex(
                "INSERT INTO issue_activity (issue_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                (issue_id, now, "regressed", detail),
            )
        c.many(
            "INSERT INTO issue_tags (issue_id, key, value, count, first_seen, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (issue_id, key, value) DO UPDATE SET"
            f" count = issue_tags.count + excluded.count,"
            f" last_seen = {greatest}(issue_tags.last_seen, excluded.last_seen)",
            [(*k, *v) for k, v in sorted(tags.items())],
        )
        c.many(
            "INSERT INTO hourly_counts (project_id, issue_id, hour, count) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (project_id, issue_id, hour)"
            " DO UPDATE SET count = hourly_counts.count + excluded.count",
            [(*k, v) for k, v in sorted(hourly.items())],
        )
        self._releases(releases)

    def _releases(self, releases: dict[tuple[int, str], list[float]]) -> None:
        least, greatest = self.db.least, self.db.greatest
        self.c.many(
            "INSERT INTO releases (project_id, version, first_seen, last_seen, event_count)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, version) DO UPDATE SET"
            " event_count = releases.event_count + excluded.event_count,"
            f" first_seen = {least}(releases.first_seen, excluded.first_seen),"
            f" last_seen = {greatest}(releases.last_seen, excluded.last_seen)",
            [(*k, v[1], v[2], int(v[0])) for k, v in sorted(releases.items())],
        )

    def _sessions(self, results: list[EnvelopeResult]) -> None:
        buckets: dict[tuple[int, str, str, float], list[int]] = {}
        releases: dict[tuple[int, str], list[float]] = {}
        for result in results:
            for s in result.sessions:
                b = buckets.setdefault((s.project_id, s.release, s.environment, s.hour), [0] * 5)
                for i, n in enumerate((s.started, s.healthy, s.errored, s.abnormal, s.crashed)):
                    b[i] += n
                r = releases.setdefault((s.project_id, s.release), [0, s.hour, s.hour])
                r[1] = min(r[1], s.hour)
                r[2] = max(r[2], s.hour)
        self.c.many(
            "INSERT INTO session_counts (project_id, release, environment, hour, started,"
            " healthy, errored, abnormal, crashed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (project_id, release, environment, hour) DO UPDATE SET"
            " started = session_counts.started + excluded.started,"
            " healthy = session_counts.healthy + excluded.healthy,"
            " errored = session_counts.errored + excluded.errored,"
            " abnormal = session_counts.abnormal + excluded.abnormal,"
            " crashed = session_counts.crashed + excluded.crashed",
            [(*k, *v) for k, v in sorted(buckets.items())],
        )
        self._releases(releases)
