"""Reading profiles in the tests: the samples of one thread, their hottest leaf functions."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.support.sink import Sink


def leaf_counts(profile: dict[str, Any], thread_id: str | None = None) -> Counter[str]:
    """How many samples (of ``thread_id``, or of every thread) have each function as their leaf frame."""
    body = profile["profile"]
    frames, stacks = body["frames"], body["stacks"]
    counts: Counter[str] = Counter()
    for sample in body["samples"]:
        if thread_id is not None and sample["thread_id"] != thread_id:
            continue
        stack = stacks[sample["stack_id"]]
        if stack:
            counts[frames[stack[0]]["function"]] += 1
    return counts


def stack_functions(profile: dict[str, Any], sample: dict[str, Any]) -> list[str]:
    body = profile["profile"]
    return [body["frames"][i]["function"] for i in body["stacks"][sample["stack_id"]]]


def envelopes_with(
    sink: Sink, item_type: str
) -> list[tuple[dict[str, Any], list[tuple[dict[str, Any], Any]]]]:
    """Every envelope received with an item of ``item_type``: (header, [(item header, JSON payload)])."""
    with sink._cond:
        requests = list(sink.requests)
    out = []
    for request in requests:
        if any(h.get("type") == item_type for h, _ in request.items):
            out.append((request.envelope_header or {}, [(h, json.loads(p)) for h, p in request.items]))
    return out
