"""What an alert rule is and how it decides, as pure functions: the caller passes the time.

A rule belongs to a project and fires on one trigger:

- ``new-issue``: an issue is seen for the first time;
- ``regression``: a resolved issue is seen again (or in a release at or after the one it was
  resolved in);
- ``frequency``: an issue gets at least ``threshold`` events within ``window`` minutes
  (``once``: only the first time it ever goes over);
- ``users``: an issue affects more than ``threshold`` distinct users within ``window`` minutes;
- ``crash-free``: a release's crash-free session rate falls below ``below`` percent, once it has
  at least ``min_sessions`` sessions;
- ``cron``: a cron monitor missed a check-in, failed or timed out;
- ``p95``: a transaction's duration percentile (p95 unless ``percentile`` says otherwise) over
  the last ``window`` minutes is above ``above_ms``, once the window holds at least
  ``min_count`` transactions (read from the minute rollups, see :mod:`.latency`).

Anti-flood: each (rule, subject) pair — subject being an issue, a release, a monitor or a
transaction — has a cooldown; what fires again within it is suppressed and counted. Messages of
one rule are spaced at least ``digest`` seconds apart; what fires meanwhile joins the next message
(a digest).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

TRIGGERS: tuple[str, ...] = ("new-issue", "regression", "frequency", "users", "crash-free", "cron", "p95")
#: Triggers about issues (their subject is ``issue:<id>``).
ISSUE_TRIGGERS = frozenset({"new-issue", "regression", "frequency", "users"})
FORMATS: tuple[str, ...] = ("json", "slack", "discord", "mattermost", "ntfy")
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "fatal")
#: Percentiles a ``p95`` rule may watch (95 unless the rule says otherwise).
PERCENTILES: tuple[int, ...] = (50, 75, 95, 99)
DEFAULT_PERCENTILE = 95
#: Windows of ``frequency``, ``users`` and ``p95`` rules are at most a day (minute counters and
#: minute rollups answer them).
MAX_WINDOW_MINUTES = 24 * 60

DEFAULT_COOLDOWN = 30 * 60.0
DEFAULT_DIGEST = 60.0
#: Issues listed in one message at most; the rest are counted ("and 12 more").
MAX_ITEMS_PER_MESSAGE = 20


class RuleError(ValueError):
    """A rule definition is incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Filters:
    """Narrow a rule to some events: all given fields must match (None or empty: any).

    ``level`` is a minimum ("error" also matches "fatal"). ``transaction`` (an exact name) is for
    ``p95`` rules, whose rollups have neither levels nor tags.
    """

    environment: str | None = None
    level: str | None = None
    release: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    transaction: str | None = None

    def matches(
        self,
        *,
        level: str | None,
        environment: str | None,
        release: str | None,
        tags: Iterable[tuple[str, str]] = (),
    ) -> bool:
        if self.environment and environment != self.environment:
            return False
        if self.release and release != self.release:
            return False
        if self.level and _level_rank(level) < _level_rank(self.level):
            return False
        if self.tags:
            have = set(tags)
            if not all(tag in have for tag in self.tags):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.environment:
            out["environment"] = self.environment
        if self.level:
            out["level"] = self.level
        if self.release:
            out["release"] = self.release
        if self.tags:
            out["tags"] = {k: v for k, v in self.tags}
        if self.transaction:
            out["transaction"] = self.transaction
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Filters:
        data = data or {}
        tags = data.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise RuleError("filters.tags must be an object of key: value")
        level = data.get("level") or None
        if level is not None and level not in LEVELS:
            raise RuleError(f"filters.level must be one of {', '.join(LEVELS)}")
        return cls(
            environment=_opt_str(data.get("environment")),
            level=level,
            release=_opt_str(data.get("release")),
            tags=tuple(sorted((str(k)[:200], str(v)[:200]) for k, v in tags.items())),
            # Stored transaction names are at most 200 characters (performance/model.py).
            transaction=str(data["transaction"])[:200] if data.get("transaction") not in (None, "") else None,
        )


def _opt_str(value: Any) -> str | None:
    return str(value)[:250] if value not in (None, "") else None


def _level_rank(level: str | None) -> int:
    try:
        return LEVELS.index(level or "error")
    except ValueError:
        return LEVELS.index("error")


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    """A rule as asked for (validated by :func:`validate`), before it has an id."""

    trigger: str
    webhook_url: str | None = None
    format: str = "json"
    email: str | None = None
    secret: str | None = None
    name: str = ""
    threshold: int | None = None
    window_minutes: int | None = None
    below: float | None = None
    min_sessions: int | None = None
    #: ``p95``: the limit in milliseconds, the percentile watched, and the transactions the window
    #: needs before the rule may fire (None: :func:`default_min_count`).
    above_ms: float | None = None
    percentile: int | None = None
    min_count: int | None = None
    once: bool = False
    filters: Filters = Filters()
    cooldown: float = DEFAULT_COOLDOWN
    digest: float = DEFAULT_DIGEST


def validate(spec: RuleSpec) -> RuleSpec:
    """``spec`` if it is complete and consistent, else :class:`RuleError` saying what is missing."""
    if spec.trigger not in TRIGGERS:
        raise RuleError(f"unknown trigger {spec.trigger!r}: use one of {', '.join(TRIGGERS)}")
    if not spec.webhook_url and not spec.email:
        raise RuleError("a rule needs a target: a webhook URL, an e-mail address, or both")
    if spec.format not in FORMATS:
        raise RuleError(f"unknown format {spec.format!r}: use one of {', '.join(FORMATS)}")
    if spec.email is not None and not _looks_like_address(spec.email):
        raise RuleError(f"not an e-mail address: {spec.email!r}")
    if spec.trigger in ("frequency", "users"):
        if not spec.threshold or spec.threshold < 1 or not spec.window_minutes or spec.window_minutes < 1:
            raise RuleError(f"a {spec.trigger} rule needs --threshold N and --window MINUTES (both >= 1)")
        if spec.window_minutes > MAX_WINDOW_MINUTES:
            raise RuleError("--window is at most 1440 minutes (one day)")
    if spec.trigger == "p95":
        _validate_p95(spec)
        percentile = spec.percentile or DEFAULT_PERCENTILE
        # Defaults are stored with the rule, so that its JSON and page say what it does.
        spec = dataclasses.replace(
            spec, percentile=percentile, min_count=spec.min_count or default_min_count(percentile)
        )
    else:
        if spec.filters.transaction:
            raise RuleError("--transaction applies to p95 rules (issue rules: --tag transaction:NAME)")
        # A form sends every field: the p95 ones mean nothing to the other triggers.
        spec = dataclasses.replace(spec, above_ms=None, percentile=None, min_count=None)
    if spec.trigger == "crash-free":
        if spec.below is None or not 0 < spec.below <= 100:
            raise RuleError("a crash-free rule needs --below PERCENT (0 < PERCENT <= 100)")
        if spec.min_sessions is None or spec.min_sessions < 1:
            raise RuleError("a crash-free rule needs --min-sessions N (>= 1)")
    if spec.cooldown < 0 or spec.digest < 0:
        raise RuleError("cooldown and digest must not be negative")
    return spec


def _validate_p95(spec: RuleSpec) -> None:
    above = spec.above_ms
    if above is None or not math.isfinite(above) or above <= 0:
        raise RuleError("a p95 rule needs --above-ms MILLISECONDS (> 0)")
    if not spec.window_minutes or not 1 <= spec.window_minutes <= MAX_WINDOW_MINUTES:
        raise RuleError("a p95 rule needs --window MINUTES (1 to 1440)")
    if spec.percentile is not None and spec.percentile not in PERCENTILES:
        raise RuleError(f"--percentile must be one of {', '.join(f'p{p}' for p in PERCENTILES)}")
    if spec.min_count is not None and spec.min_count < 1:
        raise RuleError("--min-count must be at least 1")
    if spec.filters.level or spec.filters.tags:
        # Rollups keep no level and no tags: such a filter would silently match nothing.
        raise RuleError("p95 rules filter by --environment, --release and --transaction only")


def default_min_count(percentile: int) -> int:
    """Transactions a ``p95`` rule's window needs by default: 20, or more for p99.

    The least count at which one slow transaction alone cannot be the percentile (nearest rank:
    rank ``ceil(q * n) < n`` needs ``n >= 1 / (1 - q)``), and never below 20: one slow request
    at night pages no one.
    """
    return max(20, math.ceil(1 / (1 - percentile / 100) - 1e-9))


def _looks_like_address(value: str) -> bool:
    # A header-injection guard more than a validator: one address, no line breaks or commas.
    local, _, domain = value.partition("@")
    bad = any(ch in value for ch in "\r\n,;<> \t")
    return bool(local) and "." in domain and not bad and len(value) <= 254


def in_cooldown(last_sent: float | None, now: float, cooldown: float) -> bool:
    """True when a notification about the same subject went out less than ``cooldown`` ago."""
    return last_sent is not None and now < last_sent + cooldown


def next_slot(last_slot: float | None, now: float, digest: float) -> float:
    """When a new message of a rule may go out: messages are at least ``digest`` seconds apart.

    If a message is already scheduled in the future, the new notification joins it.
    """
    if last_slot is None or digest <= 0:
        return now
    if last_slot >= now:
        return last_slot
    return max(now, last_slot + digest)


def over_threshold(trigger: str, value: float, threshold: float) -> bool:
    """Frequency fires at ``threshold`` events or more; users at more than ``threshold`` users."""
    if trigger == "users":
        return value > threshold
    return value >= threshold


def crash_free_breached(started: int, crashed: int, below_percent: float, min_sessions: int) -> bool:
    """True when a release has enough sessions and its crash-free rate is below the limit."""
    if started < min_sessions or started <= 0:
        return False
    rate = max(0.0, 1.0 - crashed / started) * 100
    return rate < below_percent


def percentile_of(value: Any) -> int | None:
    """``95``, ``"95"`` or ``"p95"`` -> 95 (validated later); None when absent."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise RuleError("percentile must be one of p50, p75, p95, p99")
    text = str(value).strip().lower().removeprefix("p")
    try:
        number = float(text)
    except ValueError:
        raise RuleError("percentile must be one of p50, p75, p95, p99") from None
    if not number.is_integer():
        raise RuleError("percentile must be one of p50, p75, p95, p99")
    return int(number)


def minute(ts: float) -> float:
    return float(int(ts // 60) * 60)


def _int_or_none(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise RuleError(f"{key} must be a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RuleError(f"{key} must be a number") from None


def _float_or_none(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise RuleError(f"{key} must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RuleError(f"{key} must be a number") from None


def spec_from_json(data: Mapping[str, Any]) -> RuleSpec:
    """A validated :class:`RuleSpec` from the API's JSON body (see docs/alerts.md)."""
    cooldown = _float_or_none(data, "cooldown_minutes")
    digest = _float_or_none(data, "digest_seconds")
    filters = data.get("filters")
    if filters is not None and not isinstance(filters, Mapping):
        raise RuleError("filters must be an object")

    def text(key: str) -> str | None:
        value = data.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise RuleError(f"{key} must be a string")
        return value

    return validate(
        RuleSpec(
            trigger=str(data.get("on") or ""),
            webhook_url=text("webhook"),
            format=text("format") or "json",
            email=text("email"),
            secret=text("secret"),
            name=(text("name") or "")[:200],
            threshold=_int_or_none(data, "threshold"),
            window_minutes=_int_or_none(data, "window"),
            below=_float_or_none(data, "below"),
            min_sessions=_int_or_none(data, "min_sessions"),
            above_ms=_float_or_none(data, "above_ms"),
            percentile=percentile_of(data.get("percentile")),
            min_count=_int_or_none(data, "min_count"),
            once=bool(data.get("once")),
            filters=Filters.from_json(filters),
            cooldown=DEFAULT_COOLDOWN if cooldown is None else cooldown * 60,
            digest=DEFAULT_DIGEST if digest is None else digest,
        )
    )
