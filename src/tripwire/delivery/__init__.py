"""How payloads leave the process: one delivery machine, shared by the client and the HTTP reporters.

- :mod:`.outbox`      ``Outbox``: a bounded two-lane queue (normal, low priority) with eviction.
- :mod:`.worker`      ``Worker``: one lazily started daemon thread draining an outbox; flush and close
                      with deadlines; renewed in a forked child (see ``tripwire._forksafe``).
- :mod:`.clock`       ``Clock``: the time base of backoff and rate-limit windows (injectable in tests).
- :mod:`.policy`      pure functions: ``classify(status, headers, error)``, ``backoff(attempt)``, and
                      the parsing of ``Retry-After`` and ``X-Sentry-Rate-Limits``.
- :mod:`.ratelimits`  ``RateLimits``: the per-category windows a backend asked for.
- :mod:`.connections` ``ConnectionPool``: kept-alive connections, through ``http.client``.
- :mod:`.spool`       ``Spool``: the on-disk spool of payloads a backend could not take yet.

The client's worker (building events) and every HTTP reporter's sender (posting them) are both a
``Worker`` over an ``Outbox``; ``tripwire.reporters.http`` composes these parts.
"""
