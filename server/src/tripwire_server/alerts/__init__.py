"""Alerts: rules that turn digested data into notifications, and their durable delivery.

    rules.py     what a rule is and how it decides (pure functions, time passed in)
    latency.py   the p95 trigger's decision: a window of rollup histograms -> firing or resolved
    ssrf.py      which webhook addresses may be called
    senders.py   message formats (JSON, Slack, Discord, Mattermost, ntfy, e-mail) and the drivers
    outbox.py    the background worker that delivers the outbox with retries and backoff
    settings.py  SMTP and webhook settings of ``tripwire serve``

The store writes outbox rows in the digest's own transaction (``store/alerts.py``); this package
imports the store, never the other way round, except for the pure :mod:`.rules` and
:mod:`.latency`.
"""
