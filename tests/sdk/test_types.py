"""tripwire.types: what reporter and plug-in authors import, under its public name."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from types import GenericAlias
from typing import TypeGuard

import tripwire
import tripwire.types
from tripwire.types import DropRecorder, Event, Hint, Reporter, SessionBatch

DOCS = Path(__file__).resolve().parents[2] / "docs"


class _CountingReporter(Reporter):
    """A plug-in written only against tripwire.types: keeps events, counts what it refuses."""

    name = "counting"

    def __init__(self) -> None:
        self.events: list[Event] = []

    def bind(self, stats: DropRecorder) -> None:  # any DropCounter is a DropRecorder
        self.recorder = stats

    def send_event(self, event: Event) -> None:
        if event.get("level") == "debug":
            self.recorder.record("rejected", reporter=self.name)
            return
        self.events.append(event)


def test_a_reporter_written_against_the_public_types_gets_events_and_counts_drops() -> None:
    """Events reach a plug-in typed with tripwire.types; what it records as dropped shows in stats()."""
    reporter = _CountingReporter()

    def before_send(event: Event, hint: Hint) -> Event | None:
        event.setdefault("tags", {})["seen"] = "yes"
        return event

    tripwire.init(reporters=[reporter], before_send=before_send)
    tripwire.capture_message("kept", "error")
    tripwire.capture_message("refused", "debug")
    assert tripwire.flush(5)
    assert [e["logentry"]["message"] for e in reporter.events] == ["kept"]
    assert reporter.events[0]["tags"]["seen"] == "yes"
    assert tripwire.stats()["dropped"] == {"rejected": 1}


def test_public_classes_name_the_public_module() -> None:
    """Classes in tripwire.types say tripwire.types in reprs, and pickle by that name."""
    assert SessionBatch.__module__ == DropRecorder.__module__ == "tripwire.types"
    batch = SessionBatch(updates=[{"sid": "1" * 32, "status": "ok"}])
    assert repr(batch).startswith("SessionBatch(aggregates=(), updates=[")
    assert pickle.loads(pickle.dumps(batch)) == batch
    classes = [v for v in (getattr(tripwire.types, n) for n in tripwire.types.__all__) if _is_class(v)]
    assert {c.__name__ for c in classes} == {"DropRecorder", "Reporter", "SessionBatch"}
    for cls in classes:
        assert not any(part.startswith("_") for part in cls.__module__.split(".")), cls


def _is_class(value: object) -> TypeGuard[type]:
    return isinstance(value, type) and not isinstance(value, GenericAlias)


def test_every_public_type_is_documented() -> None:
    """Each name of tripwire.types appears in docs/reporters.md, and __all__ is sorted."""
    text = (DOCS / "reporters.md").read_text()
    documented = set(re.findall(r"`([A-Za-z]+)`", text))
    assert sorted(tripwire.types.__all__) == list(tripwire.types.__all__)
    assert set(tripwire.types.__all__) <= documented, set(tripwire.types.__all__) - documented
