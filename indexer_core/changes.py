"""Which shards of a repository differ from the index: what a sensor tick or status asks.

Disk side: each shard's data version from a scan that reuses known hashes (a `stat` per file,
or one `git ls-files` in a checkout). Index side: the same version computed from the `files`
manifest, plus a count of chunks that lack a vector from the configured model.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from indexer_core import skip_reasons, storage
from indexer_core.indexing import (
    IndexSettings,
    chunker_fingerprint,
    manifest_version,
    partition_versions,
    read_manifest,
)
from indexer_core.partitioning import data_version


@dataclass
class ChangeSet:
    repo: str
    disk_versions: dict[int, str]
    index_versions: dict[int, str]
    stale: dict[int, str] = field(default_factory=dict)  # shard -> why
    files_seen: int = 0
    files_hashed: int = 0
    seconds: float = 0.0


def index_versions(
    db_uri: str, repo: str, settings: IndexSettings, manifest: pa.Table | None = None
) -> dict[int, str]:
    """Each shard's data version as the index records it (from the `files` manifest)."""
    if manifest is None:
        manifest = read_manifest(db_uri, repo)
    if manifest is None:
        return {}
    # Column lists, not a dict per row: this runs on every sensor tick over every file.
    by_shard: dict[int, list[tuple[str, str]]] = {}
    columns = (manifest.column(c).to_pylist() for c in ("path", "shard", "file_hash", "reason"))
    for path, shard, file_hash, reason in zip(*columns):
        files = by_shard.setdefault(shard, [])
        if file_hash and reason != skip_reasons.UNREADABLE:  # as manifest_version counts them
            files.append((path, file_hash))
    fingerprint = chunker_fingerprint(settings.model)
    return {shard: data_version(files, fingerprint) for shard, files in by_shard.items()}


# (db_uri, repo, model) -> (what the tables were, shards): a sensor's process asks every tick,
# and on an unchanged index the tables' versions say the answer has not moved.
_GAPS: dict[tuple[str, str, str], tuple[tuple[int, ...], set[int]]] = {}


def shards_missing_vectors(db_uri: str, repo: str, model: str) -> set[int]:
    """Shards where the number of chunks differs from the number of vectors by this model."""
    db = storage.connect(db_uri)
    names = storage.table_names(db)
    if storage.CHUNKS not in names:
        return set()
    chunks_table = db.open_table(storage.CHUNKS)
    vectors_table = db.open_table(storage.VECTORS) if storage.VECTORS in names else None
    # Versions plus row counts (both from the manifests, no data read): a table dropped and
    # rebuilt to the same version number would also have to match both counts.
    versions = (
        chunks_table.version, chunks_table.count_rows(),
        vectors_table.version if vectors_table is not None else -1,
        vectors_table.count_rows() if vectors_table is not None else -1,
    )
    cached = _GAPS.get((db_uri, repo, model))
    if cached is not None and cached[0] == versions:
        return set(cached[1])
    where = storage.repo_filter(repo)
    chunks = Counter(storage.read_rows(chunks_table, where, ["shard"]).column("shard").to_pylist())
    vectors: Counter = Counter()
    if vectors_table is not None:
        rows = storage.read_rows(vectors_table, where, ["shard", "model"])
        vectors = Counter(s for s, m in zip(rows.column("shard").to_pylist(), rows.column("model").to_pylist()) if m == model)
    gaps = {s for s in set(chunks) | set(vectors) if chunks.get(s, 0) != vectors.get(s, 0)}
    _GAPS[(db_uri, repo, model)] = (versions, gaps)
    return set(gaps)


def detect_changes(
    db_uri: str, repo: str, root: str, settings: IndexSettings | None = None, include_vectors: bool = True
) -> ChangeSet:
    """Shards whose files, chunker settings or (with `include_vectors`) vectors differ from the index."""
    started = time.perf_counter()
    settings = settings or IndexSettings()
    manifest = read_manifest(db_uri, repo)  # read once: known hashes and the index's versions
    disk, scan = partition_versions(db_uri, repo, root, settings, manifest)
    index = index_versions(db_uri, repo, settings, manifest)
    changes = ChangeSet(repo, disk, index, files_seen=len(scan.files), files_hashed=scan.hashed)
    empty = manifest_version([], chunker_fingerprint(settings.model))
    for shard, version in disk.items():
        if index.get(shard, empty) != version:
            changes.stale[shard] = "files changed" if shard in index else "never indexed"
    for shard in shards_missing_vectors(db_uri, repo, settings.model) if include_vectors else ():
        if shard < settings.shards:
            changes.stale.setdefault(shard, "chunks without vectors from this model")
    changes.seconds = time.perf_counter() - started
    return changes
