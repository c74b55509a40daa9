"""Performance data: transactions and spans, their rollups, samples, traces and N+1 detection.

Everything here is pure (no database, no I/O): the digest turns ``transaction`` and ``span``
items into :class:`~.model.Transaction` records, :mod:`.rollup` folds them into per-minute and
per-hour rows whose duration histograms (:mod:`.histogram`) merge by adding counts, and
:mod:`.nplusone` finds repeated database statements. The store writes what they produce
(``store/performance.py``). See docs/performance.md.
"""

from .. import item_types

# Transactions and span-v2 items have a home now: ingest queues them, SDKs are not told to stop.
item_types.register("transaction", "transaction", stored=True, home="performance: rollups, samples, traces")
item_types.register("span", "span", stored=True, home="performance: rollups, samples, traces")
item_types.register(
    "otel_span", "span", stored=True, home="performance: an OpenTelemetry span (OTLP JSON), as a transaction"
)
