"""The `files` manifest: one row per file seen, and the data versions derived from it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa

from indexer_core.chunking.files import file_id
from indexer_core.discovery import skip_reasons
from indexer_core.discovery.hashing import StatRecord
from indexer_core.indexing.partitioning import data_version, shard_of
from indexer_core.indexing.settings import IndexSettings, chunker_fingerprint
from indexer_core.storage import tables as storage
from indexer_core.storage.locking import local_path

INDEXED = "indexed"
SKIPPED = "skipped"


def manifest_of_partition(files_table, repo: str, shard: int) -> dict[str, dict]:
    """The partition's manifest rows by path."""
    rows = storage.read_rows(files_table, storage.partition_filter(repo, shard)).to_pylist()
    return {row["path"]: row for row in rows}


def manifest_row(repo: str, shard: int, path: str, **values) -> dict:
    """A manifest row with every column, `values` over the defaults of a skipped file."""
    row = {
        "file_id": file_id(repo, path),
        "repo": repo,
        "path": path,
        "shard": shard,
        "status": SKIPPED,
        "reason": "",
        "detail": "",
        "language": "",
        "size": 0,
        "mtime_ns": 0,
        "file_hash": "",
        "chunks": 0,
        "chunker": "",
    }
    row.update(values)
    return row


def manifest_version(rows: list[dict], fingerprint: str) -> str:
    """A shard's data version from its manifest rows: every file the scan would hash.

    Matches `staleness.disk_versions` on an unchanged tree, so the sensor sees no change.
    """
    return data_version(
        [
            (r["path"], r["file_hash"])
            for r in rows
            if r["file_hash"] and r["reason"] != skip_reasons.UNREADABLE
        ],
        fingerprint,
    )


MANIFEST_COLUMNS = ["path", "shard", "size", "mtime_ns", "file_hash", "reason"]


def read_manifest(db_uri: str, repo: str) -> pa.Table | None:
    """A repository's rows of the `files` table (MANIFEST_COLUMNS), or None before any run."""
    storage.check_repo_name(repo)
    db = storage.connect(db_uri)
    if storage.FILES not in storage.table_names(db):
        return None
    return storage.read_rows(
        db.open_table(storage.FILES), storage.repo_filter(repo), MANIFEST_COLUMNS
    )


@dataclass(frozen=True)
class ManifestSummary:
    """What a sensor tick needs from a repository's `files` rows, derived once per table state.

    `known` feeds the scan's size+mtime fast path; `counted` is every file the data version
    counts (path -> hash, the rows `manifest_version` keeps); `versions` is each shard's
    version as the index records it; `current` is the same per shard under today's shard
    count, so a shard whose files all match `counted` takes its version without re-hashing.
    """

    known: dict[str, StatRecord]
    counted: dict[str, str]
    versions: dict[int, str]
    current: dict[int, tuple[int, str]]  # shard under settings.shards -> (files, version)


def summarize_manifest(manifest: pa.Table | None, settings: IndexSettings) -> ManifestSummary:
    """Derive the sensor's view of the index from the manifest rows (MANIFEST_COLUMNS)."""
    if manifest is None:
        return ManifestSummary({}, {}, {}, {})
    fingerprint = chunker_fingerprint(settings.model)
    # Column lists, not a dict per row: a large repository has hundreds of thousands of rows.
    columns = [
        manifest.column(c).to_pylist()
        for c in ("path", "shard", "size", "mtime_ns", "file_hash", "reason")
    ]
    known: dict[str, StatRecord] = {}
    counted: dict[str, str] = {}
    by_shard: dict[int, list[tuple[str, str]]] = {}
    by_current: dict[int, list[tuple[str, str]]] = {}
    for path, shard, size, mtime_ns, file_hash, reason in zip(*columns):
        files = by_shard.setdefault(shard, [])
        if not file_hash:
            continue
        known[path] = StatRecord(size, mtime_ns, file_hash)
        if reason != skip_reasons.UNREADABLE:  # as manifest_version counts them
            files.append((path, file_hash))
            counted[path] = file_hash
            by_current.setdefault(shard_of(path, settings.shards), []).append((path, file_hash))
    versions = {shard: data_version(files, fingerprint) for shard, files in by_shard.items()}
    current = {
        shard: (
            len(files),
            versions[shard] if by_shard.get(shard) == files else data_version(files, fingerprint),
        )
        for shard, files in by_current.items()
    }
    return ManifestSummary(known, counted, versions, current)


# (db_uri, repo, chunker fingerprint, shards) -> (table state, summary): a sensor's process
# asks every tick, and between runs the `files` table does not move.
_SUMMARIES: dict[tuple[str, str, str, int], tuple[tuple, ManifestSummary]] = {}


def manifest_summary(db_uri: str, repo: str, settings: IndexSettings) -> ManifestSummary:
    """The repository's ManifestSummary, re-read only when the `files` table has changed.

    The table's state is its version and row count (from its manifest, no data read) plus,
    for a local database, the identity of its versions directory, so a table dropped and
    rebuilt to the same version and row count still reads as new.
    """
    storage.check_repo_name(repo)
    db = storage.connect(db_uri)
    if storage.FILES not in storage.table_names(db):
        return summarize_manifest(None, settings)
    table = db.open_table(storage.FILES)
    state = (table.version, table.count_rows(), _versions_dir_identity(db_uri))
    key = (db_uri, repo, chunker_fingerprint(settings.model), settings.shards)
    cached = _SUMMARIES.get(key)
    if cached is not None and state[2] is not None and cached[0] == state:
        return cached[1]
    rows = storage.read_rows(table, storage.repo_filter(repo), MANIFEST_COLUMNS)
    summary = summarize_manifest(rows, settings)
    _SUMMARIES[key] = (state, summary)
    return summary


def _versions_dir_identity(db_uri: str) -> tuple[int, int, int] | None:
    """Device, inode and mtime of the `files` table's versions directory; None when not local."""
    base = local_path(db_uri)
    if base is None:
        return None
    try:
        st = os.stat(os.path.join(storage.table_uri(base, storage.FILES), "_versions"))
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)
