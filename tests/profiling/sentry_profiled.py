"""Run by the tests in a subprocess: the official sentry-sdk profiles one slow transaction and, with
``continuous``, runs its continuous profiler, reporting to the DSN given as the first argument."""

from __future__ import annotations

import sys
import time

import sentry_sdk

from tests.profiling.apps import slow_checksum


def main(dsn: str, mode: str) -> None:
    if mode == "continuous":
        sentry_sdk.init(
            dsn,
            traces_sample_rate=1.0,
            profile_session_sample_rate=1.0,
            profile_lifecycle="manual",
            auto_enabling_integrations=False,
        )
        sentry_sdk.profiler.start_profiler()
        with sentry_sdk.start_transaction(name="continuous-job", op="task"):
            slow_checksum(0.3)
        sentry_sdk.profiler.stop_profiler()
    else:
        sentry_sdk.init(
            dsn,
            traces_sample_rate=1.0,
            profiles_sample_rate=1.0,
            release="1.0",
            auto_enabling_integrations=False,
        )
        with sentry_sdk.start_transaction(name="job", op="task"):
            slow_checksum(0.3)
    time.sleep(0.1)
    sentry_sdk.flush(5)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "transaction")
