"""The options of :func:`tripwire.init`: defaults, environment variables and validation.

Validation happens once, at init, and is the only place the SDK raises (``ConfigurationError``, with the
option's name in the message). Everything after init trusts these values.
"""

# No ``from __future__ import annotations`` here: typing.NamedTuple would compile each string
# annotation into a ForwardRef at import (measured: 0.5 ms for Options alone).

import os
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

from . import _deferred
from ._crumb_types import BUGSNAG_TYPES
from ._dsn import Dsn
from ._exceptions import ConfigurationError
from ._option_names import MIGRATION_DOCS, translate
from ._references import resolve
from ._types import BeforeBreadcrumb, BeforeSend

#: Environment variables read when the option is not given.
ENV_DSN = "TRIPWIRE_DSN"
ENV_RELEASE = "TRIPWIRE_RELEASE"
ENV_ENVIRONMENT = "TRIPWIRE_ENVIRONMENT"


class Options(NamedTuple):
    """Every option, with its default. See docs/options.md for the prose.

    Immutable; ``options._replace(release=...)`` makes a changed copy. A NamedTuple rather than a
    frozen dataclass because ``dataclasses`` pulls ``inspect`` into ``import tripwire``.
    """

    dsn: Dsn | None = None
    reporters: tuple[Any, ...] = ()
    #: Settings given to every reporter of ``reporters`` that does not set them (asphalt's
    #: ``default_args``): ``{"http_timeout": 3, "spool_dir": "/var/spool/app"}``.
    reporter_defaults: Mapping[str, Any] = MappingProxyType({})
    release: str | None = None
    environment: str = "production"
    server_name: str | None = None
    debug: bool = False

    # What is captured
    sample_rate: float = 1.0
    #: Full events per minute for one error (same types and raise sites); None: every occurrence.
    repeat_limit: int | None = 60
    ignore_errors: tuple[type[BaseException] | str, ...] = ()
    before_send: BeforeSend | None = None
    before_breadcrumb: BeforeBreadcrumb | None = None
    max_breadcrumbs: int = 100
    #: BugSnag's option: only breadcrumbs of these BugSnag types are kept; None keeps every type.
    enabled_breadcrumb_types: frozenset[str] | None = None
    send_default_pii: bool = False

    # Stack traces
    project_root: str | None = None
    in_app_include: tuple[str, ...] = ()
    in_app_exclude: tuple[str, ...] = ()
    include_local_variables: bool = True
    library_frame_locals: bool = False
    include_source_context: bool = True
    context_lines: int = 5
    attach_modules: bool = False

    # Size and scrubbing
    max_event_bytes: int = 200_000
    max_value_length: int = 1024
    scrub_keys: tuple[str, ...] = ()
    scrub_patterns: tuple[re.Pattern[str], ...] = ()

    # Delivery
    max_queue_size: int = 10_000
    shutdown_timeout: float = 2.0
    http_timeout: float = 5.0
    spool_dir: str | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    send_client_reports: bool = True

    # Integrations and release health
    default_integrations: bool = True
    integrations: tuple[Any, ...] = ()
    disabled_integrations: tuple[str, ...] = ()
    auto_session_tracking: bool = True

    # Performance tracing (see docs/tracing.md): none of it runs while both of the first two are None.
    traces_sample_rate: float | None = None
    traces_sampler: Callable[[dict[str, Any]], float | bool] | None = None
    #: Which outgoing URLs get propagation headers; None: every URL.
    trace_propagation_targets: tuple[re.Pattern[str], ...] | None = None
    propagate_traceparent: bool = False
    max_spans: int = 1000

    # Profiling (see docs/profiling.md): nothing of it is loaded while the first three are None.
    #: The fraction of sampled transactions that get a profile of their duration (at most 30 s).
    profiles_sample_rate: float | None = None
    profiles_sampler: Callable[[dict[str, Any]], float | bool] | None = None
    #: Continuous profiling: the chance that this process profiles at all (decided once).
    profile_session_sample_rate: float | None = None
    #: "manual" (start_profiler()/stop_profiler()) or "trace" (while a sampled transaction runs).
    profile_lifecycle: str = "manual"
    #: Stack samples per second.
    profiler_frequency: float = 101.0
    #: Seconds between two ``profile_chunk`` items of the continuous profiler.
    profile_chunk_interval: float = 60.0

    #: Extra, integration-specific settings that plug-ins may read (never validated here).
    extensions: Mapping[str, Any] = MappingProxyType({})

    @property
    def enabled(self) -> bool:
        """False when there is nowhere to send events: init() then costs nothing per capture."""
        return self.dsn is not None or bool(self.reporters)

    @property
    def tracing(self) -> bool:
        """True when transactions may be sampled (``traces_sample_rate`` or ``traces_sampler`` set)."""
        return self.traces_sample_rate is not None or self.traces_sampler is not None

    @property
    def profiling(self) -> bool:
        """True when a profiling option is set (then, and only then, the profiler module loads)."""
        return (
            self.profiles_sample_rate is not None
            or self.profiles_sampler is not None
            or self.profile_session_sample_rate is not None
        )


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        raise ConfigurationError(f"{name}: expected a list of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"{name}: expected a list of strings, got item {item!r}")
    return items


def _number(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name}: expected a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{name}: must be {bounds}, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name}: expected an integer, got {value!r}")
    if value < low:
        raise ConfigurationError(f"{name}: must be at least {low}, got {value!r}")
    return value


def _optional_limit(name: str, value: Any) -> int | None:
    # 0 and None both mean "no limit", the way a user would write either.
    if value is None or value == 0:
        return None
    return _integer(name, value, 1)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name}: expected True or False, got {value!r}")
    return value


def _optional_str(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{name}: expected a string, got {value!r}")
    return value or None


def _callable(name: str, value: Any) -> Any:
    value = resolve(value, name)  # "module:function" from a configuration file
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name}: expected a callable, got {value!r}")
    return value


def _ignore_errors(name: str, value: Any) -> tuple[type[BaseException] | str, ...]:
    if isinstance(value, str | type) or not isinstance(value, Sequence | set | frozenset):
        raise ConfigurationError(f"{name}: expected a list of exception classes or names")
    items = tuple(value)
    for item in items:
        ok = isinstance(item, str) or (isinstance(item, type) and issubclass(item, BaseException))
        if not ok:
            raise ConfigurationError(f"{name}: {item!r} is neither an exception class nor a name")
    return items


def _patterns(name: str, value: Any) -> tuple[re.Pattern[str], ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigurationError(f"{name}: expected a list of regular expressions")
    compiled = []
    for item in value:
        if isinstance(item, re.Pattern):
            compiled.append(item)
            continue
        if not isinstance(item, str):
            raise ConfigurationError(f"{name}: expected a regular expression, got {item!r}")
        try:
            compiled.append(re.compile(item))
        except re.error as exc:
            raise ConfigurationError(f"{name}: invalid regular expression {item!r}: {exc}") from None
    return tuple(compiled)


def _optional_rate(name: str, value: Any) -> float | None:
    return None if value is None else _number(name, value, 0.0, 1.0)


def _optional_patterns(name: str, value: Any) -> tuple[re.Pattern[str], ...] | None:
    # None (the default) means every URL; a single string is accepted as one pattern.
    if value is None:
        return None
    return _patterns(name, [value] if isinstance(value, str | re.Pattern) else value)


def _crumb_types(name: str, value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    types = frozenset(t.lower() for t in _str_tuple(name, value))
    unknown = types - BUGSNAG_TYPES
    if unknown:
        known = ", ".join(sorted(BUGSNAG_TYPES))
        raise ConfigurationError(f"{name}: unknown breadcrumb type {sorted(unknown)[0]!r}; known: {known}")
    return types


def _lifecycle(name: str, value: Any) -> str:
    if value not in ("manual", "trace"):
        raise ConfigurationError(f"{name}: expected 'manual' or 'trace', got {value!r}")
    return str(value)


def _sequence(name: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ConfigurationError(f"{name}: expected a list, got {value!r}")
    return tuple(value)


def _objects(name: str, value: Any) -> tuple[Any, ...]:
    """A list whose items may be references from a configuration file (see ``_references``)."""
    return tuple(resolve(item, f"{name}[{i}]") for i, item in enumerate(_sequence(name, value)))


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name}: expected a mapping, got {value!r}")
    return dict(value)


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "reporters": _objects,
    "reporter_defaults": _mapping,
    "release": _optional_str,
    "environment": lambda n, v: _optional_str(n, v) or "production",
    "server_name": _optional_str,
    "debug": _boolean,
    "sample_rate": lambda n, v: _number(n, v, 0.0, 1.0),
    "repeat_limit": _optional_limit,
    "ignore_errors": _ignore_errors,
    "before_send": _callable,
    "before_breadcrumb": _callable,
    "max_breadcrumbs": lambda n, v: _integer(n, v, 0),
    "enabled_breadcrumb_types": _crumb_types,
    "send_default_pii": _boolean,
    "project_root": _optional_str,
    "in_app_include": _str_tuple,
    "in_app_exclude": _str_tuple,
    "include_local_variables": _boolean,
    "library_frame_locals": _boolean,
    "include_source_context": _boolean,
    "context_lines": lambda n, v: _integer(n, v, 0),
    "attach_modules": _boolean,
    "max_event_bytes": lambda n, v: _integer(n, v, 4096),
    "max_value_length": lambda n, v: _integer(n, v, 16),
    "scrub_keys": _str_tuple,
    "scrub_patterns": _patterns,
    "max_queue_size": lambda n, v: _integer(n, v, 1),
    "shutdown_timeout": lambda n, v: _number(n, v, 0.0),
    "http_timeout": lambda n, v: _number(n, v, 0.001),
    "spool_dir": _optional_str,
    "spool_max_bytes": lambda n, v: _integer(n, v, 0),
    "send_client_reports": _boolean,
    "default_integrations": _boolean,
    "integrations": _objects,
    "disabled_integrations": _str_tuple,
    "auto_session_tracking": _boolean,
    "extensions": _mapping,
    "traces_sample_rate": _optional_rate,
    "traces_sampler": _callable,
    "trace_propagation_targets": _optional_patterns,
    "propagate_traceparent": _boolean,
    "max_spans": lambda n, v: _integer(n, v, 0),
    "profiles_sample_rate": _optional_rate,
    "profiles_sampler": _callable,
    "profile_session_sample_rate": _optional_rate,
    "profile_lifecycle": _lifecycle,
    "profiler_frequency": lambda n, v: _number(n, v, 1.0, 1000.0),
    "profile_chunk_interval": lambda n, v: _number(n, v, 0.01),
}

OPTION_NAMES: frozenset[str] = frozenset(_VALIDATORS) | {"dsn"}

# Every dataclass field needs a validator, and the other way round.
assert set(Options._fields) == OPTION_NAMES


def _hostname() -> str | None:
    # os.uname() is enough where it exists; the socket module costs ~3 ms of init time.
    try:
        return os.uname().nodename or None
    except AttributeError:  # Windows
        return _deferred.hostname() or None


def build_options(dsn: str | None = None, /, **kwargs: Any) -> Options:
    """Validate keyword options into an :class:`Options`; raise ConfigurationError naming the option."""
    kwargs = translate(kwargs)
    unknown = sorted(set(kwargs) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(
            f"unknown option {unknown[0]!r}: tripwire does not implement it; {MIGRATION_DOCS} lists "
            f"every sentry-sdk and bugsnag option with tripwire's equivalent. Known options are: "
            f"{', '.join(sorted(OPTION_NAMES))}"
        )
    if "dsn" in kwargs:
        dsn = kwargs.pop("dsn")
    if dsn is None:
        dsn = os.environ.get(ENV_DSN) or None
    if dsn is not None and not _is_str(dsn):
        raise ConfigurationError(f"dsn: expected a string, got {dsn!r}")
    values: dict[str, Any] = {"dsn": Dsn.parse(dsn) if dsn else None}
    if "release" not in kwargs and os.environ.get(ENV_RELEASE):
        kwargs["release"] = os.environ[ENV_RELEASE]
    if "environment" not in kwargs and os.environ.get(ENV_ENVIRONMENT):
        kwargs["environment"] = os.environ[ENV_ENVIRONMENT]
    for name, value in kwargs.items():
        values[name] = _VALIDATORS[name](name, value)
    if values.get("server_name") is None:
        values["server_name"] = _hostname()
    if values.get("project_root") is None:
        values["project_root"] = os.getcwd()
    return Options(**values)


__all__ = ["OPTION_NAMES", "Options", "build_options"]
