"""Option names that other SDKs use, so a configuration copied from sentry-sdk or bugsnag starts.

Three kinds (docs/migrating.md lists every option of both SDKs with tripwire's equivalent):

* ``RENAMED``: the same setting under tripwire's name; taken with a warning that names the new one.
* ``ACCEPTED_LATER``: settings whose behaviour tripwire does not have yet; accepted and ignored with
  a warning that says so, never a crash (none at the moment).
* anything else unknown raises ``ConfigurationError`` naming it and pointing to the migration page.
"""

from typing import Any

from ._log import logger

MIGRATION_DOCS = "docs/migrating.md"

#: Other SDKs' name → tripwire's (value unchanged).
RENAMED: dict[str, str] = {
    # sentry-sdk
    "with_locals": "include_local_variables",
    # bugsnag
    "app_version": "release",
    "release_stage": "environment",
    "hostname": "server_name",
    "ignore_classes": "ignore_errors",
    "params_filters": "scrub_keys",
    "auto_capture_sessions": "auto_session_tracking",
}

#: Accepted, no behaviour yet: the reason the warning gives.
ACCEPTED_LATER: dict[str, str] = {}


def translate(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with other SDKs' names mapped to tripwire's, each with a warning."""
    if not any(name in RENAMED or name in ACCEPTED_LATER or name == "enable_tracing" for name in kwargs):
        return kwargs
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name == "enable_tracing":
            # sentry-sdk's older switch: True means "trace everything" unless a rate is given.
            if value and "traces_sample_rate" not in kwargs and "traces_sampler" not in kwargs:
                logger.warning("tripwire: option 'enable_tracing' means traces_sample_rate=1.0; using it")
                out["traces_sample_rate"] = 1.0
            else:
                logger.warning("tripwire: option 'enable_tracing' ignored: traces_sample_rate decides")
        elif name in ACCEPTED_LATER:
            logger.warning("tripwire: option %r: %s (see %s)", name, ACCEPTED_LATER[name], MIGRATION_DOCS)
        elif name in RENAMED:
            new = RENAMED[name]
            if new in kwargs:
                logger.warning("tripwire: option %r ignored: %r is given too", name, new)
                continue
            logger.warning("tripwire: option %r is called %r in tripwire; using it", name, new)
            out[new] = value
        else:
            out[name] = value
    return out
