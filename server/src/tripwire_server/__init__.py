"""The tripwire collector: a self-hosted server that speaks the Sentry ingest protocol.

Run it with ``tripwire serve``; build it in code with :func:`tripwire_server.app.create_app`.
The pieces, one module each: ``config`` (settings), ``store`` (SQLite and PostgreSQL behind one
interface), ``ingest`` (HTTP intake), ``intake`` (group commit into the durable queue),
``digest`` (normalize, group and store in the background), ``grouping``, ``normalize``, ``api``
(JSON API), ``cli``.
"""
