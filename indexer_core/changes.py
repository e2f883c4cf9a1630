"""Which shards of a repository differ from the index: what a sensor tick or status asks.

Disk side: each shard's data version from a scan that reuses known hashes (a `stat` per file,
or one `git ls-files` in a checkout). Index side: the same version computed from the `files`
manifest, plus a count of chunks that lack a vector from the configured model.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from indexer_core import skip_reasons, storage
from indexer_core.discovery import Scan, scan_repository, scan_state_files, walk_directories
from indexer_core.hashing import StatRecord
from indexer_core.indexing import (
    MANIFEST_COLUMNS,
    IndexSettings,
    chunker_fingerprint,
    manifest_version,
)
from indexer_core.locking import local_path
from indexer_core.models import FileEntry
from indexer_core.partitioning import data_version, shard_of
from indexer_core.watching import TreeWatch, scanned_directories


@dataclass
class ChangeSet:
    repo: str
    disk_versions: dict[int, str]
    index_versions: dict[int, str]
    stale: dict[int, str] = field(default_factory=dict)  # shard -> why
    files_seen: int = 0
    files_hashed: int = 0
    seconds: float = 0.0
    scanned: bool = True  # False: a watch saw no event since the last scan, whose result stands
    unwatched: str | None = None  # why a watch asked for could not be kept (limits, platform)


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
    columns = [manifest.column(c).to_pylist() for c in ("path", "shard", "size", "mtime_ns", "file_hash", "reason")]
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
        shard: (len(files), versions[shard] if by_shard.get(shard) == files else data_version(files, fingerprint))
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
        st = os.stat(os.path.join(base, f"{storage.FILES}.lance", "_versions"))
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def disk_versions(files: list[FileEntry], summary: ManifestSummary, settings: IndexSettings) -> dict[int, str]:
    """Each shard's data version as the scanned tree stands (what `partition_versions` gives).

    A shard whose scanned files are exactly the manifest's counted files, with the same
    hashes, has the version the manifest already gives: only shards that differ are hashed.
    """
    shards = settings.shards
    matched = [0] * shards
    changed: set[int] = set()
    counted = summary.counted
    for entry in files:
        shard = shard_of(entry.path, shards)
        if counted.get(entry.path) == entry.file_hash:
            matched[shard] += 1
        else:
            changed.add(shard)
    fingerprint = chunker_fingerprint(settings.model)
    empty = data_version([], fingerprint)
    versions: dict[int, str] = {}
    for shard in range(shards):
        count, version = summary.current.get(shard, (0, empty))
        if shard not in changed and matched[shard] == count:
            versions[shard] = version
    if len(versions) < shards:
        by_shard: dict[int, list[tuple[str, str]]] = {s: [] for s in range(shards) if s not in versions}
        for entry in files:
            todo = by_shard.get(shard_of(entry.path, shards))
            if todo is not None:
                todo.append((entry.path, entry.file_hash))
        versions.update({s: data_version(pairs, fingerprint) for s, pairs in by_shard.items()})
    return dict(sorted(versions.items()))


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


@dataclass
class _LastScan:
    disk: dict[int, str]
    files_seen: int
    at: float  # time.monotonic()
    summary: ManifestSummary  # the manifest view whose size+mtime fast path the scan trusted


@dataclass
class _WatchedTree:
    watch: TreeWatch
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: _LastScan | None = None


# (root, discovery settings, shards, chunker) -> its watch and last full scan; one watch per
# key, since `covered` settles what that key's scan saw. Most recently used last.
_WATCHED: dict[tuple, _WatchedTree] = {}
_WATCHED_LOCK = threading.Lock()

FULL_SCAN_EVERY_SECONDS = 600.0
MAX_WATCHED_TREES = 64  # inotify instances are a per-user kernel limit (128 by default)


def _watched_tree(root: str, settings: IndexSettings) -> _WatchedTree:
    key = (os.path.abspath(root), settings.discovery(), settings.shards, chunker_fingerprint(settings.model))
    with _WATCHED_LOCK:
        tree = _WATCHED.pop(key, None) or _WatchedTree(TreeWatch(key[0]))
        _WATCHED[key] = tree
        while len(_WATCHED) > MAX_WATCHED_TREES:
            _WATCHED.pop(next(iter(_WATCHED))).watch.close()
    return tree


def _scan_disk(root: str, settings: IndexSettings, summary: ManifestSummary) -> tuple[dict[int, str], Scan]:
    scan = scan_repository(root, settings.discovery(), known=summary.known)
    return disk_versions(scan.files, summary, settings), scan


def _watched_disk(
    root: str, settings: IndexSettings, summary: ManifestSummary, full_scan_every: float
) -> tuple[dict[int, str], int, int, bool, str | None]:
    """The disk side through the tree's watch: (versions, files seen, hashed, scanned, why unwatched)."""
    tree = _watched_tree(root, settings)
    with tree.lock:  # one tick per tree at a time: a drained event must reach its own scan
        quiet = not tree.watch.changed()  # drains the events; the scan must begin after this
        last = tree.last
        if quiet and last is not None and last.summary is summary and time.monotonic() - last.at < full_scan_every:
            return dict(last.disk), last.files_seen, 0, False, None
        start = tree.watch.before_scan(scan_state_files(root, settings.use_git))
        began = time.monotonic()
        disk, scan = _scan_disk(root, settings, summary)
        walked = walk_directories(root) if scan.used_git else scan.directories
        listed = [f.path for f in scan.files] + [s.path for s in scan.skipped if not s.path.endswith("/")]
        tree.watch.covered(scanned_directories(listed, walked), start)
        tree.last = _LastScan(dict(disk), len(scan.files), began, summary)
        return disk, len(scan.files), scan.hashed, True, tree.watch.unavailable


def detect_changes(
    db_uri: str, repo: str, root: str, settings: IndexSettings | None = None, include_vectors: bool = True,
    watch: bool = False, full_scan_every: float = FULL_SCAN_EVERY_SECONDS,
) -> ChangeSet:
    """Shards whose files, chunker settings or (with `include_vectors`) vectors differ from the index.

    With `watch`, the process keeps an inotify watch on the tree (see `watching`): while it
    has seen no event and the index has not moved, the last full scan's disk side stands; a
    full scan runs anyway every `full_scan_every` seconds (changes inotify cannot see).
    """
    started = time.perf_counter()
    settings = settings or IndexSettings()
    summary = manifest_summary(db_uri, repo, settings)  # cached while the `files` table is unchanged
    unwatched = None
    if watch:
        disk, files_seen, files_hashed, scanned, unwatched = _watched_disk(root, settings, summary, full_scan_every)
    else:
        disk, scan = _scan_disk(root, settings, summary)
        files_seen, files_hashed, scanned = len(scan.files), scan.hashed, True
    index = dict(summary.versions)
    changes = ChangeSet(
        repo, disk, index, files_seen=files_seen, files_hashed=files_hashed, scanned=scanned, unwatched=unwatched
    )
    empty = manifest_version([], chunker_fingerprint(settings.model))
    for shard, version in disk.items():
        if index.get(shard, empty) != version:
            changes.stale[shard] = "files changed" if shard in index else "never indexed"
    for shard in shards_missing_vectors(db_uri, repo, settings.model) if include_vectors else ():
        if shard < settings.shards:
            changes.stale.setdefault(shard, "chunks without vectors from this model")
    changes.seconds = time.perf_counter() - started
    return changes
