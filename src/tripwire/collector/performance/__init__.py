"""Performance data: transactions and spans, their rollups, samples, traces and N+1 detection.

Everything here is pure (no database, no I/O): the digest turns ``transaction`` and ``span``
items into :class:`~.model.Transaction` records, :mod:`.rollup` folds them into per-minute and
per-hour rows whose duration histograms (:mod:`.histogram`) merge by adding counts, and
:mod:`.nplusone` finds repeated database statements. The store writes what they produce
(``store/_performance.py``). See docs/performance.md.
"""
