"""Process context: the release, and (when asked) the command line.

**Release.** When ``init()`` is given no ``release``, it is read from the first of these environment
variables that is set: ``TRIPWIRE_RELEASE``, ``SENTRY_RELEASE``, then what CI systems and hosting
platforms set to the commit being built or run (see :data:`RELEASE_ENV_VARS`). tripwire never runs
``git`` (a subprocess at init is slow and breaks in read-only containers). Pass ``release=None``
explicitly, or disable this integration, to go without.

**Command line.** ``ContextIntegration(argv=True)`` attaches ``sys.argv`` to every event as the extra
``sys.argv`` — read once at init, so an event costs nothing more. Off by default: command lines carry
secrets more often than one would like.

The ``os`` and ``runtime`` contexts and ``server_name`` are always set by the event builder; the list
of installed packages comes with the ``attach_modules=True`` option.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import ClassVar

from .. import _scope
from ._common import Integration

__all__ = ["RELEASE_ENV_VARS", "ContextIntegration", "detect_release"]

#: Where the release is looked for, in this order.
RELEASE_ENV_VARS: tuple[str, ...] = (
    "TRIPWIRE_RELEASE",
    "SENTRY_RELEASE",
    "GIT_COMMIT",  # Jenkins
    "SOURCE_VERSION",  # Heroku builds
    "HEROKU_SLUG_COMMIT",  # Heroku dyno metadata
    "HEROKU_BUILD_COMMIT",
    "CODEBUILD_RESOLVED_SOURCE_VERSION",  # AWS CodeBuild
    "CIRCLE_SHA1",  # CircleCI
    "GITHUB_SHA",  # GitHub Actions
    "CI_COMMIT_SHA",  # GitLab CI
    "BITBUCKET_COMMIT",  # Bitbucket Pipelines
    "BUILDKITE_COMMIT",  # Buildkite
    "TRAVIS_COMMIT",  # Travis CI
    "RENDER_GIT_COMMIT",  # Render
    "VERCEL_GIT_COMMIT_SHA",  # Vercel
    "RAILWAY_GIT_COMMIT_SHA",  # Railway
    "GAE_DEPLOYMENT_ID",  # Google App Engine
    "K_REVISION",  # Google Cloud Run
)


def detect_release(environ: Mapping[str, str] | None = None) -> str | None:
    """The release named by the environment (see :data:`RELEASE_ENV_VARS`), or None."""
    env = os.environ if environ is None else environ
    for name in RELEASE_ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


class ContextIntegration(Integration):
    """Release auto-detection, and ``sys.argv`` on events when ``argv=True``."""

    identifier: ClassVar[str] = "context"

    def __init__(self, *, detect_release: bool = True, argv: bool = False) -> None:
        self.detect_release = detect_release
        self.argv = argv
        self._argv: list[str] | None = None

    def install(self) -> None:
        if self.argv:
            # The process-level scope: every unit of work inherits its extras.
            root = _scope._ROOT
            self._argv = list(sys.argv)
            root.data = root.data.with_extra("sys.argv", self._argv)

    def uninstall(self) -> None:
        argv, self._argv = self._argv, None
        if argv is not None:
            root = _scope._ROOT
            if root.data.extras.get("sys.argv") is argv:
                extras = {k: v for k, v in root.data.extras.items() if k != "sys.argv"}
                root.data = _scope.replace_field(root.data, extras=extras)
