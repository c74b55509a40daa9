"""Profiles: ``profile`` and ``profile_chunk`` items, per-function aggregates and flame graphs.

Everything here is pure (no database, no I/O): :mod:`.model` reads both sample formats into one
shape and splits continuous chunks by transaction, :mod:`.aggregate` counts self and total samples
per function (leaving :mod:`.idle` frames out of the self-time ranking) and builds call trees,
:mod:`.flamegraph` lays a tree out for the pages, :mod:`.collapsed` reads collapsed-stack files.
The store keeps what they produce (``store/profiles.py``). See docs/profiling.md.
"""

from .. import item_types

# Profiles have a home now: ingest queues them, SDKs are no longer told to stop sending them.
item_types.register("profile", "profile", stored=True, home="profiling: function tables and flame graphs")
item_types.register(
    "profile_chunk", "profile_chunk", stored=True, home="profiling: continuous profiles, by transaction"
)
