"""The table sizes at which the index's upkeep acts: plain numbers, importable without
LanceDB, so configuration states its defaults without loading the storage engine (the
CLI starts its step server before it imports LanceDB)."""

# Below this many vectors a flat (exact) scan answers in a few milliseconds more than an
# IVF_HNSW_SQ index does, and is exact; above it the scan grows linearly with the table.
# bench/search_latency.py measures both sides on 100k rows.
ANN_MIN_ROWS = 50_000

# The embedding cache keeps the vectors of texts no chunk has any more, so a revert or a
# branch switch is not embedded again. Housekeeping keeps at most this many of those stale
# rows, or as many as there are live ones if that is more, and drops the oldest beyond that;
# without a bound the cache grows by every edited chunk of every run, forever.
CACHE_STALE_FLOOR = 50_000

# Housekeeping is due once a table has this many fragments (about one per incremental run
# of the largest tables): `python -m bench.housekeeping` measures what it saves and costs.
MAX_FRAGMENTS = 100
