"""The door: HTTP endpoints that accept reports and commit them to the durable ingest queue.

- :mod:`.sentry`: Sentry envelopes and the legacy ``/store/`` endpoint;
- :mod:`.bugsnag`: BugSnag's notify and sessions endpoints;
- :mod:`.otlp`: OpenTelemetry trace exports (OTLP/HTTP);
- :mod:`.request`: what they share (the request, refusals, keys, body reading, quotas, queueing).

What happens next: :mod:`..queue_writer` commits accepted bodies in groups, and the digest
(:mod:`..digest`) turns queued bodies into stored data later.
"""
