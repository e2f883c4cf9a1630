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

from indexer_core.discovery.listing import Scan, scan_repository, scan_state_files, walk_directories
from indexer_core.indexing.manifest import ManifestSummary, manifest_summary, manifest_version
from indexer_core.indexing.partitioning import data_version, shard_of
from indexer_core.indexing.settings import IndexSettings, chunker_fingerprint
from indexer_core.indexing.watching import TreeWatch, scanned_directories
from indexer_core.records import FileEntry
from indexer_core.storage import tables as storage


@dataclass
class ChangeSet:
    repo: str
    disk_versions: dict[int, str]
    index_versions: dict[int, str]
    stale: dict[int, str] = field(default_factory=dict)  # shard -> why
    files_seen: int = 0
    changed_bytes: int = 0  # the bytes of files that are new or differ from the index
    files_hashed: int = 0
    seconds: float = 0.0
    scanned: bool = True  # False: a watch saw no event since the last scan, whose result stands
    unwatched: str | None = None  # why a watch asked for could not be kept (limits, platform)


MISSING_VECTORS = "chunks without vectors from this model"


def changed_bytes(files: list[FileEntry], summary: ManifestSummary) -> int:
    """How many bytes a run would read and chunk: the files whose hash the index does not
    count (new or changed ones). What a run costs, where the stale shards only say where."""
    counted = summary.counted
    return sum(entry.size for entry in files if counted.get(entry.path) != entry.file_hash)


def disk_versions(
    files: list[FileEntry], summary: ManifestSummary, settings: IndexSettings
) -> dict[int, str]:
    """Each shard's data version as the scanned tree stands (what hashing every file of it
    would give).

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
        by_shard: dict[int, list[tuple[str, str]]] = {
            s: [] for s in range(shards) if s not in versions
        }
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
        chunks_table.version,
        chunks_table.count_rows(),
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
        vectors = Counter(
            s
            for s, m in zip(rows.column("shard").to_pylist(), rows.column("model").to_pylist())
            if m == model
        )
    gaps = {s for s in set(chunks) | set(vectors) if chunks.get(s, 0) != vectors.get(s, 0)}
    _GAPS[(db_uri, repo, model)] = (versions, gaps)
    return set(gaps)


@dataclass
class _LastScan:
    disk: dict[int, str]
    files_seen: int
    changed_bytes: int
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
    key = (
        os.path.abspath(root),
        settings.discovery(),
        settings.shards,
        chunker_fingerprint(settings.model),
    )
    with _WATCHED_LOCK:
        tree = _WATCHED.pop(key, None) or _WatchedTree(TreeWatch(key[0]))
        _WATCHED[key] = tree
        while len(_WATCHED) > MAX_WATCHED_TREES:
            _WATCHED.pop(next(iter(_WATCHED))).watch.close()
    return tree


def _scan_disk(
    root: str, settings: IndexSettings, summary: ManifestSummary
) -> tuple[dict[int, str], Scan]:
    scan = scan_repository(root, settings.discovery(), known=summary.known)
    return disk_versions(scan.files, summary, settings), scan


def _watched_disk(
    root: str, settings: IndexSettings, summary: ManifestSummary, full_scan_every: float
) -> tuple[dict[int, str], int, int, int, bool, str | None]:
    """The disk side through the tree's watch: (versions, files seen, changed bytes, hashed,
    scanned, why unwatched)."""
    tree = _watched_tree(root, settings)
    with tree.lock:  # one tick per tree at a time: a drained event must reach its own scan
        quiet = not tree.watch.changed()  # drains the events; the scan must begin after this
        last = tree.last
        if (
            quiet
            and last is not None
            and last.summary is summary
            and time.monotonic() - last.at < full_scan_every
        ):
            return dict(last.disk), last.files_seen, last.changed_bytes, 0, False, None
        start = tree.watch.before_scan(scan_state_files(root, settings.use_git))
        began = time.monotonic()
        disk, scan = _scan_disk(root, settings, summary)
        walked = walk_directories(root) if scan.used_git else scan.directories
        listed = [f.path for f in scan.files] + [
            s.path for s in scan.skipped if not s.path.endswith("/")
        ]
        tree.watch.covered(scanned_directories(listed, walked), start)
        changed = changed_bytes(scan.files, summary)
        tree.last = _LastScan(dict(disk), len(scan.files), changed, began, summary)
        return disk, len(scan.files), changed, scan.hashed, True, tree.watch.unavailable


def detect_changes(
    db_uri: str,
    repo: str,
    root: str,
    settings: IndexSettings | None = None,
    include_vectors: bool = True,
    watch: bool = False,
    full_scan_every: float = FULL_SCAN_EVERY_SECONDS,
) -> ChangeSet:
    """Shards whose files, chunker settings or (with `include_vectors`) vectors differ from
    the index.

    With `watch`, the process keeps an inotify watch on the tree (see `watching`): while it
    has seen no event and the index has not moved, the last full scan's disk side stands; a
    full scan runs anyway every `full_scan_every` seconds (changes inotify cannot see).
    """
    started = time.perf_counter()
    settings = settings or IndexSettings()
    summary = manifest_summary(
        db_uri, repo, settings
    )  # cached while the `files` table is unchanged
    unwatched = None
    if watch:
        disk, files_seen, changed, files_hashed, scanned, unwatched = _watched_disk(
            root, settings, summary, full_scan_every
        )
    else:
        disk, scan = _scan_disk(root, settings, summary)
        files_seen, files_hashed, scanned = len(scan.files), scan.hashed, True
        changed = changed_bytes(scan.files, summary)
    index = dict(summary.versions)
    changes = ChangeSet(
        repo,
        disk,
        index,
        files_seen=files_seen,
        changed_bytes=changed,
        files_hashed=files_hashed,
        scanned=scanned,
        unwatched=unwatched,
    )
    empty = manifest_version([], chunker_fingerprint(settings.model))
    for shard, version in disk.items():
        if index.get(shard, empty) != version:
            changes.stale[shard] = "files changed" if shard in index else "never indexed"
    for shard in shards_missing_vectors(db_uri, repo, settings.model) if include_vectors else ():
        if shard < settings.shards:
            changes.stale.setdefault(shard, MISSING_VECTORS)
    changes.seconds = time.perf_counter() - started
    return changes
