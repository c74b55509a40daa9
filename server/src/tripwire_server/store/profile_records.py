"""Records and the store interface of profiles: stored profiles and per-function aggregates."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from ..profiling.model import Profile


@dataclasses.dataclass(frozen=True)
class ProfileInfo:
    """A stored profile (without its samples; :meth:`ProfileStore.get_profile` has those)."""

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


class ProfileStore(abc.ABC):
    """Profiles (``profile`` and ``profile_chunk`` items) and their aggregates (docs/profiling.md)."""

    @abc.abstractmethod
    def profile_functions(
        self, project_id: int, name: str, since: float, until: float, *, release: str | None = None
    ) -> tuple[ProfileTotals, list[FunctionRow]]:
        """Every function's self and total samples in transaction ``name`` (hour aggregates)."""

    @abc.abstractmethod
    def profile_releases(self, project_id: int, name: str, since: float) -> list[str]:
        """Releases with profile samples of ``name`` since ``since``, newest first (by first hour)."""

    @abc.abstractmethod
    def profile_transactions(self, project_id: int, since: float) -> list[tuple[str, int]]:
        """``(transaction name, samples)`` of the project's profiled transactions, most first."""

    @abc.abstractmethod
    def list_profiles(
        self,
        project_id: int,
        name: str | None = None,
        *,
        since: float = 0.0,
        release: str | None = None,
        limit: int = 50,
    ) -> list[ProfileInfo]:
        """Stored profiles, newest first."""

    @abc.abstractmethod
    def get_profile(self, project_id: int, profile_id: str) -> tuple[ProfileInfo, Profile]:
        """A stored profile with its samples. NotFound if missing."""

    @abc.abstractmethod
    def load_profiles(
        self, project_id: int, name: str, *, since: float, release: str | None = None, limit: int = 50
    ) -> list[Profile]:
        """The newest stored profiles of ``name`` (for an aggregated flame graph)."""

    @abc.abstractmethod
    def profiles_of_events(self, project_id: int | None, event_ids: list[str]) -> dict[str, tuple[int, str]]:
        """transaction event id -> (project id, profile id) of a stored profile of it (in any
        project when ``project_id`` is None)."""

    @abc.abstractmethod
    def add_profile(self, project_id: int, profile: Profile) -> None:
        """Aggregate and keep one profile outside the digest (``tripwire profile import``)."""

    @abc.abstractmethod
    def apply_profile_retention(self, *, days: int, now: float) -> int:
        """Drop profiles and aggregates older than ``days`` (0 keeps them); return rows removed."""
