"""Records of profiles: stored profiles and per-function aggregates (the repository is :mod:`.profiles`)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ProfileInfo:
    """A stored profile (without its samples; :meth:`~.profiles.Profiles.get_profile` has those)."""

    project_id: int
    profile_id: str
    kind: str
    event_id: str
    trace_id: str
    name: str
    release: str
    environment: str
    start: float
    end: float
    samples: int

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "duration_ms": round(max(0.0, self.end - self.start) * 1000, 3)}


@dataclasses.dataclass(frozen=True)
class FunctionRow:
    """One function's samples in a transaction over a time range (and a release, if asked)."""

    function: str
    module: str
    file: str
    self_samples: int
    total_samples: int


@dataclasses.dataclass(frozen=True)
class ProfileTotals:
    """Samples of a transaction's threads over a time range: the denominator of the shares."""

    samples: int = 0
    idle: int = 0
    profiles: int = 0
