"""Compaction and cleanup of the LanceDB tables, so a table updated often stays small and fast.

Every write is a new version with its own small fragments and deletion files: after a
thousand incremental runs a table is a thousand versions deep, reads open many fragments
and the directory keeps every superseded file. `optimize` merges fragments, folds deletions
in, updates indexes and deletes versions older than a grace period. The grace period exists
because a reader (or a concurrent writer) may still be on an older version; cleaning up
versions it uses would break it, so keep it longer than any run or query lasts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

from indexer_core.storage import tables as storage
from indexer_core.storage.thresholds import CACHE_STALE_FLOOR, MAX_FRAGMENTS

DEFAULT_GRACE = timedelta(hours=1)
CACHE_LIVE_SHARE = 1.0  # stale rows allowed per live row, above CACHE_STALE_FLOOR
_DELETE_BATCH = 2_000
TABLES = (storage.FILES, storage.CHUNKS, storage.VECTORS, storage.EMBEDDING_CACHE)


@dataclass
class TableHousekeeping:
    table: str
    versions_before: int
    versions_after: int
    bytes_before: int
    bytes_after: int
    fragments_before: int = 0
    fragments_after: int = 0
    seconds: float = 0.0


@dataclass
class CachePruning:
    """What pruning the embedding cache found and dropped (rows counted by cache key)."""

    live: int  # keys some current vector uses
    stale: int  # keys no current vector uses, before pruning
    kept: int  # the stale keys allowed to stay
    pruned: int


@dataclass
class HousekeepingReport:
    tables: list[TableHousekeeping] = field(default_factory=list)
    cache: CachePruning | None = None

    @property
    def bytes_freed(self) -> int:
        return sum(t.bytes_before - t.bytes_after for t in self.tables)


def directory_bytes(path: str) -> int:
    """Bytes on disk under a local path (0 for a URI that is not a local directory)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _table_path(db_uri: str, name: str) -> str:
    return storage.table_uri(db_uri, name)


def optimize_table(db_uri: str, name: str, grace: timedelta = DEFAULT_GRACE) -> TableHousekeeping:
    """Compact one table's fragments, update its indexes, delete versions older than `grace`."""
    started = time.perf_counter()
    table = storage.connect(db_uri).open_table(name)
    versions_before = len(table.list_versions())
    bytes_before = directory_bytes(_table_path(db_uri, name))
    fragments_before = _fragments(table)
    _optimize(table, grace)
    return TableHousekeeping(
        table=name,
        versions_before=versions_before,
        versions_after=len(table.list_versions()),
        bytes_before=bytes_before,
        bytes_after=directory_bytes(_table_path(db_uri, name)),
        fragments_before=fragments_before,
        fragments_after=_fragments(table),
        seconds=time.perf_counter() - started,
    )


def _optimize(table, grace: timedelta) -> None:
    """Merge fragments, fold deletions in, update indexes, drop versions older than `grace`."""
    storage.with_commit_retry(lambda: table.optimize(cleanup_older_than=grace), table=table)


def _fragments(table) -> int:
    return int(table.stats()["fragment_stats"]["num_fragments"])


def fragment_counts(db_uri: str) -> dict[str, int]:
    """Fragments of every index table in the database (read from the manifests, no data)."""
    db = storage.connect(db_uri)
    names = storage.table_names(db)
    return {n: _fragments(db.open_table(n)) for n in TABLES if n in names}


def crowded_tables(db_uri: str, max_fragments: int = MAX_FRAGMENTS) -> dict[str, int]:
    """The tables with more than `max_fragments` fragments: housekeeping is due."""
    return {n: c for n, c in fragment_counts(db_uri).items() if c > max_fragments}


def prune_embedding_cache(
    db_uri: str, stale_floor: int | None = None, live_share: float | None = None
) -> CachePruning | None:
    """Drop the oldest cache rows that no current vector uses, beyond the stale allowance
    (`max(stale_floor, live_share x live keys)`). None when there is no cache or no vectors.

    Safe beside a running index: a row dropped here that a run was about to use is only
    embedded again, and rows are kept oldest-last, so what a run just wrote goes last.
    """
    from indexer_core.indexing.embed_step import cache_key

    db = storage.connect(db_uri)
    names = storage.table_names(db)
    if storage.EMBEDDING_CACHE not in names or storage.VECTORS not in names:
        return None
    used = (
        db.open_table(storage.VECTORS)
        .search()
        .select(["content_hash", "model"])
        .limit(None)
        .to_arrow()
    )
    live = {
        cache_key(h, m)
        for h, m in zip(used.column("content_hash").to_pylist(), used.column("model").to_pylist())
    }
    cache = db.open_table(storage.EMBEDDING_CACHE)
    rows = cache.search().select(["cache_key"]).with_row_id(True).limit(None).to_arrow()
    # Row ids grow with each append and compaction keeps fragment order: oldest first.
    rows = rows.sort_by("_rowid")
    stale = list(dict.fromkeys(k for k in rows.column("cache_key").to_pylist() if k not in live))
    floor = CACHE_STALE_FLOOR if stale_floor is None else stale_floor
    share = CACHE_LIVE_SHARE if live_share is None else live_share
    allowed = max(floor, int(share * len(live)))
    drop = stale[: max(0, len(stale) - allowed)]
    for start in range(0, len(drop), _DELETE_BATCH):
        where = storage.id_list_filter("cache_key", drop[start : start + _DELETE_BATCH])
        storage.with_commit_retry(lambda where=where: cache.delete(where), table=cache)
    return CachePruning(
        live=len(live), stale=len(stale), kept=len(stale) - len(drop), pruned=len(drop)
    )


def optimize_index(
    db_uri: str, grace: timedelta = DEFAULT_GRACE, cache_stale_floor: int | None = None
) -> HousekeepingReport:
    """Housekeeping for every index table that exists in the database: the embedding cache
    is pruned first (`prune_embedding_cache`), so compaction folds its deletions in."""
    cache = prune_embedding_cache(db_uri, cache_stale_floor)
    names = storage.table_names(storage.connect(db_uri))
    return HousekeepingReport(
        [optimize_table(db_uri, n, grace) for n in TABLES if n in names], cache
    )


# The `files` manifest is small (a row per file) but gets a fragment per shard per run, and a
# sensor reads all of it every tick: 64 fragments of 40 rows read in ~45 ms, one in ~8 ms.
MANIFEST_MAX_FRAGMENTS = 4


@dataclass
class Compaction:
    """One table's fragments merged (`compact_manifest`)."""

    table: str
    fragments_before: int
    fragments_after: int
    seconds: float


def compact_manifest(db_uri: str, max_fragments: int = MANIFEST_MAX_FRAGMENTS) -> Compaction | None:
    """After a run's chunk steps: merge the `files` table's fragments when it has more than a few.

    Cheap (the table holds one small row per file) and it keeps the sensor's tick cheap.
    Versions older than the grace period go too, as in `optimize_table`, but without its
    counts of versions: on an object store each count reads every manifest of the table.
    None when there is nothing to do.
    """
    table = storage.open_existing(storage.connect(db_uri), storage.FILES)
    if table is None:
        return None
    before = _fragments(table)
    if before <= max_fragments:
        return None
    started = time.perf_counter()
    _optimize(table, DEFAULT_GRACE)
    return Compaction(storage.FILES, before, _fragments(table), time.perf_counter() - started)
