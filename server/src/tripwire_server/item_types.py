"""Every envelope item type the collector knows: its data category, and stored or refused.

One table answers, for ingest and digest alike, what happens to an item: it is either stored and
shown somewhere, or refused honestly. A refused item still gets its envelope a 200 (the other
items of the envelope are kept), but the answer carries ``X-Sentry-Rate-Limits`` for exactly the
refused categories, so SDKs stop sending them and record the drop in their client reports; the
collector counts it too (reason ``not_stored``, by ``item_count``), and the project's Settings
page shows what arrives without a home. Errors (``error``/``default``) are never in that header:
refusing a profile must never make an SDK drop crashes.

A feature that gives a type a home registers it as stored (:func:`register`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

#: Seconds an SDK is asked to hold back a category that the collector does not store.
REFUSAL_RETRY_AFTER = 3600
#: The reason code in the rate-limit header and the outcome counted for refused items.
NOT_STORED = "not_stored"
#: Categories that must never be refused wholesale: an SDK would drop its errors with them.
_NEVER_REFUSED = frozenset({"error", "default", ""})


@dataclasses.dataclass(frozen=True)
class ItemType:
    """What the collector does with one envelope item type."""

    name: str
    #: The Sentry data category the SDKs use for it (rate limits and client reports).
    category: str
    stored: bool
    #: Where it is stored, or why it is refused (for the docs and the Settings notice).
    home: str


_TABLE: dict[str, ItemType] = {}


def register(name: str, category: str, *, stored: bool, home: str) -> None:
    """Declare (or re-declare) what happens to items of type ``name``."""
    if not stored and category in _NEVER_REFUSED:
        raise ValueError(f"item type {name!r} of category {category!r} cannot be refused")
    _TABLE[name] = ItemType(name, category, stored, home)


for _name, _category, _home in (
    ("event", "error", "events and issues"),
    ("attachment", "attachment", "the event's attachments"),
    ("session", "session", "release health"),
    ("sessions", "session", "release health"),
    ("client_report", "internal", "client-side drop counts (Settings)"),
    ("check_in", "monitor", "cron monitors"),
    ("feedback", "feedback", "user feedback (issue page, Feedback page)"),
    ("user_report", "default", "user feedback (issue page, Feedback page)"),
    ("log", "log_item", "the Logs page, and the error page for logs of its trace"),
):
    register(_name, _category, stored=True, home=_home)

for _name, _category, _home in (
    ("transaction", "transaction", "no performance pages yet"),
    ("span", "span", "no performance pages yet"),
    ("otel_span", "span", "no performance pages yet"),
    ("profile", "profile", "no profiling pages"),
    ("profile_chunk", "profile_chunk", "no profiling pages"),
    ("replay_event", "replay", "no session replay"),
    ("replay_recording", "replay", "no session replay"),
    ("replay_video", "replay", "no session replay"),
    ("statsd", "metric_bucket", "no metrics"),
    ("metric_buckets", "metric_bucket", "no metrics"),
    ("trace_metric", "trace_metric", "no metrics"),
):
    register(_name, _category, stored=False, home=_home)


def lookup(name: str) -> ItemType | None:
    """The entry of item type ``name``; None for a type the collector does not know."""
    return _TABLE.get(name)


def all_types() -> list[ItemType]:
    """Every known item type, stored ones first (for the docs table and tests)."""
    return sorted(_TABLE.values(), key=lambda t: (not t.stored, t.name))


def quantity(headers: Mapping[str, Any]) -> int:
    """How many things one item holds: its ``item_count`` (span and log items batch many), else 1."""
    count = headers.get("item_count")
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return count
    return 1


def refused_categories(item_types: Iterable[str]) -> list[str]:
    """The categories of the refused items among ``item_types``, sorted, without duplicates."""
    found = {t.category for name in item_types if (t := _TABLE.get(name)) is not None and not t.stored}
    return sorted(found - _NEVER_REFUSED)


def refusal_header(categories: Iterable[str]) -> str | None:
    """The ``X-Sentry-Rate-Limits`` value that refuses exactly ``categories`` (None if empty).

    An empty category list would mean *all* categories to an SDK, so it is never sent.
    """
    cats = sorted(set(categories) - _NEVER_REFUSED)
    if not cats:
        return None
    return f"{REFUSAL_RETRY_AFTER}:{';'.join(cats)}:project:{NOT_STORED}"
