"""The digest: queued bodies turned into stored events, issues, sessions and counters, in the
background, after ingest has answered.

- :mod:`.processor`: pure (parse, normalize, group), no database;
- :mod:`.worker`: the thread or child process that runs it over the queue, and retention.
"""
