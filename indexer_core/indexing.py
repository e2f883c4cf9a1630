"""Indexing one partition (a repository's shard): files -> chunks, then chunks -> vectors.

These are the two units of work the orchestration runs, one process each, so everything
they take and return is small plain data. Both compare against what the tables already
hold and touch only what changed; both end in single-commit writes that a rerun repeats
harmlessly.
"""

from __future__ import annotations

import gc
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa

from indexer_core import skip_reasons, storage
from indexer_core.chunking import chunk_text
from indexer_core.chunking.header import embed_text, fitted_header, name_words
from indexer_core.decoding import DecodedText, decode_source
from indexer_core.discovery import DiscoveryConfig, Scan, read_file_bytes, scan_repository
from indexer_core.hashing import StatRecord, blob_id, stable_id, text_hash
from indexer_core.languages import language_for_path
from indexer_core.locking import partition_lock
from indexer_core.model_location import DEFAULT_MODEL
from indexer_core.models import Chunk, FileEntry, SkippedFile, Span
from indexer_core.names import search_text
from indexer_core.partitioning import data_version, shard_of
from indexer_core.tokens import TokenCounter, load_token_counter

# Bump when chunk boundaries, the embedded text or the full-text `search_text` change:
# every partition then re-chunks.
CHUNKER_VERSION = "5"
INDEXED = "indexed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class IndexSettings:
    """Everything that decides what the index holds, apart from the repository itself."""

    model: str = DEFAULT_MODEL
    shards: int = 8
    max_file_bytes: int = 2_000_000
    extra_ignores: tuple[str, ...] = ()
    use_git: bool = True

    def discovery(self) -> DiscoveryConfig:
        return DiscoveryConfig(
            max_file_bytes=self.max_file_bytes,
            extra_ignores=self.extra_ignores,
            use_git=self.use_git,
        )


@lru_cache(maxsize=4)
def chunker_fingerprint(model: str) -> str:
    """Identifies the chunk boundaries: chunker version plus the tokenizer and its limit.

    Two models that share a tokenizer share chunks, so a model change re-embeds without
    re-parsing; a tokenizer change re-chunks, since the token bound depends on it.
    """
    counter = load_token_counter(model)
    tokenizer_digest = hashlib.blake2b(counter.tokenizer.to_str().encode(), digest_size=8)
    return f"v{CHUNKER_VERSION}-{tokenizer_digest.hexdigest()}-{counter.max_tokens}"


def file_id(repo: str, path: str) -> str:
    return stable_id(repo, path)


# ---------------------------------------------------------------- one file


@dataclass
class FileChunks:
    """The chunks of one file, with the hash of the bytes they came from."""

    chunks: list[Chunk]
    file_hash: str
    language: str
    notes: list[str]


def chunk_file(
    root: str, repo: str, path: str, shard: int, counter: TokenCounter
) -> FileChunks | SkippedFile:
    """Read, decode and chunk one file; a file that cannot be read gets a skip reason."""
    try:
        data = read_file_bytes(root, path)
    except FileNotFoundError:
        return SkippedFile(path, skip_reasons.VANISHED, "deleted before it could be read")
    except IsADirectoryError:
        return SkippedFile(path, skip_reasons.NOT_REGULAR, "became a directory")
    except OSError as exc:
        return SkippedFile(path, skip_reasons.UNREADABLE, exc.strerror or str(exc))
    decoded = decode_source(data)
    if not isinstance(decoded, DecodedText):
        return SkippedFile(path, decoded.reason, decoded.detail)
    language = language_for_path(path) or "text"
    file_hash = blob_id(data)
    with _collector_paused():
        spans = chunk_text(decoded.text, path, language, counter)
        chunks = _chunks_of(spans, repo, path, shard, language, file_hash, counter)
    return FileChunks(chunks=chunks, file_hash=file_hash, language=language, notes=decoded.notes)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Chunking one file allocates many short-lived, acyclic objects (syntax nodes, spans,
    strings); reference counting frees them, and the cyclic collector's passes over them
    (and over the process's long-lived caches) cost ~10% of the time for nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _chunks_of(
    spans: list[Span], repo: str, path: str, shard: int, language: str, file_hash: str,
    counter: TokenCounter,
) -> list[Chunk]:
    """Rows for one file's spans: context header, hashes, ids and parent links."""
    fid = file_id(repo, path)
    headers: dict[tuple, str] = {}  # chunks of one scope and name share their header
    chunks: list[Chunk] = []
    for index, span in enumerate(spans):
        words = name_words(span.kind, span.name)
        header = headers.get((span.scope, words))
        if header is None:
            header = headers[span.scope, words] = fitted_header(path, language, span.scope, counter, words)
        text = embed_text(header, span.content)
        content_hash = text_hash(text)
        chunks.append(
            Chunk(
                chunk_id=stable_id(repo, path, index, span.start_line, span.end_line, content_hash),
                repo=repo,
                path=path,
                file_id=fid,
                shard=shard,
                language=language,
                kind=span.kind,
                name=span.name,
                scope=" > ".join(span.scope),
                parent_id="",
                start_line=span.start_line,
                end_line=span.end_line,
                content=span.content,
                file_hash=file_hash,
                content_hash=content_hash,
                embed_text=text,
                search_text=search_text(path, " > ".join(span.scope), span.name, span.content),
            )
        )
    for chunk, span in zip(chunks, spans):
        if span.parent is not None:
            chunk.parent_id = chunks[span.parent].chunk_id
    return chunks


def chunks_to_arrow(chunks: list[Chunk]) -> pa.Table:
    columns = {name: [getattr(c, name) for c in chunks] for name in storage.CHUNKS_SCHEMA.names}
    return pa.table(columns, schema=storage.CHUNKS_SCHEMA)


# ---------------------------------------------------------------- a partition's chunks


@dataclass
class ChunkReport:
    """What one chunk step did: the per-partition metadata shown in Dagster."""

    repo: str
    shard: int
    files: int = 0  # files of this partition now indexed
    unchanged: int = 0
    added: int = 0
    modified: int = 0
    deleted: int = 0
    renamed: int = 0
    parsed: int = 0
    bytes_parsed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    data_version: str = ""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted or self.chunks_removed)


def _manifest(files_table, repo: str, shard: int) -> dict[str, dict]:
    rows = storage.read_rows(files_table, storage.partition_filter(repo, shard)).to_pylist()
    return {row["path"]: row for row in rows}


def _manifest_row(repo: str, shard: int, path: str, **values) -> dict:
    row = {
        "file_id": file_id(repo, path), "repo": repo, "path": path, "shard": shard,
        "status": SKIPPED, "reason": "", "detail": "", "language": "", "size": 0,
        "mtime_ns": 0, "file_hash": "", "chunks": 0, "chunker": "",
    }
    row.update(values)
    return row


def chunk_partition(
    db_uri: str,
    repo: str,
    root: str,
    shard: int,
    settings: IndexSettings = IndexSettings(),
    progress: Callable[[int, int], None] | None = None,
    rehash: bool = False,
) -> ChunkReport:
    """Bring one partition's `chunks` and `files` rows in line with the repository on disk.

    `rehash` ignores the size+mtime fast path and hashes every file (the daily reconcile).
    Holds the partition's lock, so a concurrent writer of the same partition waits.
    """
    with partition_lock(db_uri, repo, shard):
        return _chunk_partition(db_uri, repo, root, shard, settings, progress, rehash)


def _chunk_partition(
    db_uri: str,
    repo: str,
    root: str,
    shard: int,
    settings: IndexSettings,
    progress: Callable[[int, int], None] | None,
    rehash: bool,
) -> ChunkReport:
    started = time.perf_counter()
    storage.check_repo_name(repo)
    report = ChunkReport(repo=repo, shard=shard)
    counter = load_token_counter(settings.model)
    fingerprint = chunker_fingerprint(settings.model)
    db = storage.connect(db_uri)
    files_table = storage.open_or_create(db, storage.FILES, storage.FILES_SCHEMA)
    chunks_table = storage.open_chunks(db)

    previous = _manifest(files_table, repo, shard)
    known = {
        p: StatRecord(r["size"], r["mtime_ns"], r["file_hash"])
        for p, r in previous.items()
        if r["file_hash"] and not rehash
    }
    scan = scan_repository(
        root, settings.discovery(), known=known, select=lambda p: shard_of(p, settings.shards) == shard
    )

    rows: dict[str, dict] = {}
    new_chunks: list[Chunk] = []
    replaced_ids: set[str] = set()  # file ids whose chunk rows this write replaces
    to_parse: list[FileEntry] = []
    for entry in scan.files:
        old = previous.get(entry.path)
        if old and _settled(old, entry.file_hash, fingerprint):
            report.unchanged += 1
            if old["status"] == SKIPPED:
                report.skipped.append(SkippedFile(entry.path, old["reason"], old["detail"]))
            rows[entry.path] = {**old, "size": entry.size, "mtime_ns": entry.mtime_ns}
        else:
            to_parse.append(entry)

    for done, entry in enumerate(to_parse, 1):
        outcome = chunk_file(root, repo, entry.path, shard, counter)
        if progress:
            progress(done, len(to_parse))
        fid = file_id(repo, entry.path)
        old = previous.get(entry.path)
        if isinstance(outcome, SkippedFile):
            _record_skip(report, rows, replaced_ids, previous, repo, shard, outcome)
            if outcome.reason in _CONTENT_REASONS:  # same bytes, same verdict: remember the hash
                rows[entry.path].update(size=entry.size, mtime_ns=entry.mtime_ns,
                                        file_hash=entry.file_hash, chunker=fingerprint)
            continue
        report.parsed += 1
        report.bytes_parsed += entry.size
        if old is None or old["status"] != INDEXED:
            report.added += 1
        else:
            report.modified += 1
        if outcome.notes:
            report.notes[entry.path] = outcome.notes
        replaced_ids.add(fid)
        new_chunks.extend(outcome.chunks)
        rows[entry.path] = _manifest_row(
            repo, shard, entry.path, status=INDEXED, detail="; ".join(outcome.notes),
            language=outcome.language, size=entry.size, mtime_ns=entry.mtime_ns,
            file_hash=outcome.file_hash, chunks=len(outcome.chunks), chunker=fingerprint,
        )

    for skip in scan.skipped:
        _record_skip(report, rows, replaced_ids, previous, repo, shard, skip)

    # Files in the manifest that the scan no longer lists are gone: their rows go too.
    gone = [p for p in previous if p not in rows]
    for path in gone:
        if previous[path]["status"] == INDEXED:
            report.deleted += 1
            replaced_ids.add(file_id(repo, path))
    new_hashes = {r["file_hash"] for p, r in rows.items() if p not in previous and r["status"] == INDEXED}
    report.renamed = sum(1 for p in gone if previous[p]["file_hash"] in new_hashes)

    if replaced_ids:
        removed_before = _chunk_count(previous, replaced_ids)
        storage.replace_rows(
            chunks_table, "chunk_id", chunks_to_arrow(new_chunks),
            f"{storage.partition_filter(repo, shard)} AND {storage.id_list_filter('file_id', replaced_ids)}",
        )
        report.chunks_added = len(new_chunks)
        report.chunks_removed = removed_before
    manifest_rows = [rows[p] for p in sorted(rows)]
    if _manifest_changed(previous, rows):
        storage.replace_rows(
            files_table, "file_id", pa.Table.from_pylist(manifest_rows, schema=storage.FILES_SCHEMA),
            storage.partition_filter(repo, shard),
        )
    report.files = sum(1 for r in manifest_rows if r["status"] == INDEXED)
    report.data_version = manifest_version(manifest_rows, fingerprint)
    report.chunks_total = chunks_table.count_rows(storage.partition_filter(repo, shard))
    report.skipped.sort(key=lambda s: s.path)
    report.seconds = time.perf_counter() - started
    return report


_CONTENT_REASONS = frozenset({skip_reasons.BINARY, skip_reasons.MINIFIED})


def _settled(old: dict, file_hash: str, fingerprint: str) -> bool:
    """The manifest row already reflects these bytes under these chunker settings."""
    if old["file_hash"] != file_hash or old["chunker"] != fingerprint:
        return False
    return old["status"] == INDEXED and old["reason"] != skip_reasons.UNREADABLE or old["reason"] in _CONTENT_REASONS


def manifest_version(rows: list[dict], fingerprint: str) -> str:
    """A shard's data version from its manifest rows: every file the scan would hash.

    Matches `partition_versions` on an unchanged tree, so the sensor sees no change.
    """
    return data_version(
        [(r["path"], r["file_hash"]) for r in rows if r["file_hash"] and r["reason"] != skip_reasons.UNREADABLE],
        fingerprint,
    )


def _chunk_count(previous: dict[str, dict], replaced_ids: set[str]) -> int:
    return sum(r["chunks"] for r in previous.values() if r["file_id"] in replaced_ids and r["status"] == INDEXED)


def _record_skip(report, rows, replaced_ids, previous, repo, shard, skip: SkippedFile) -> None:
    """Record a skip; an unreadable file that was indexed keeps its rows (nothing is lost)."""
    report.skipped.append(skip)
    old = previous.get(skip.path)
    transient = skip.reason == skip_reasons.UNREADABLE
    if old and old["status"] == INDEXED and transient:
        rows[skip.path] = {**old, "reason": skip.reason, "detail": f"previous index kept: {skip.detail}"}
        return
    if skip.reason == skip_reasons.VANISHED:
        return  # gone: the deletion pass removes its rows
    if old and old["status"] == INDEXED:
        report.deleted += 1
        replaced_ids.add(file_id(repo, skip.path))
    rows[skip.path] = _manifest_row(repo, shard, skip.path, reason=skip.reason, detail=skip.detail)


def _manifest_changed(previous: dict[str, dict], rows: dict[str, dict]) -> bool:
    return previous.keys() != rows.keys() or any(previous[p] != rows[p] for p in rows)


MANIFEST_COLUMNS = ["path", "shard", "size", "mtime_ns", "file_hash", "reason"]


def read_manifest(db_uri: str, repo: str) -> pa.Table | None:
    """A repository's rows of the `files` table (MANIFEST_COLUMNS), or None before any run."""
    storage.check_repo_name(repo)
    db = storage.connect(db_uri)
    if storage.FILES not in storage.table_names(db):
        return None
    return storage.read_rows(db.open_table(storage.FILES), storage.repo_filter(repo), MANIFEST_COLUMNS)


def partition_versions(
    db_uri: str, repo: str, root: str, settings: IndexSettings = IndexSettings(),
    manifest: pa.Table | None = None,
) -> tuple[dict[int, str], Scan]:
    """Each shard's data version as the repository stands now, hashing only what changed.

    The known (size, mtime, hash) of every file comes from the `files` manifest (read here
    unless the caller has it), so an unchanged plain directory costs a `stat` per file and a
    git checkout one `git ls-files`.
    """
    if manifest is None:
        manifest = read_manifest(db_uri, repo)
    known: dict[str, StatRecord] = {}
    if manifest is not None:
        columns = (manifest.column(c).to_pylist() for c in ("path", "size", "mtime_ns", "file_hash"))
        known = {p: StatRecord(s, m, h) for p, s, m, h in zip(*columns) if h}
    scan = scan_repository(root, settings.discovery(), known=known)
    fingerprint = chunker_fingerprint(settings.model)
    by_shard: dict[int, list[tuple[str, str]]] = {s: [] for s in range(settings.shards)}
    for entry in scan.files:
        by_shard[shard_of(entry.path, settings.shards)].append((entry.path, entry.file_hash))
    return {s: data_version(files, fingerprint) for s, files in by_shard.items()}, scan


# ---------------------------------------------------------------- a partition's vectors


@dataclass
class EmbedReport:
    repo: str
    shard: int
    chunks: int = 0
    embedded: int = 0  # computed by the model in this step
    reused: int = 0  # taken from the embedding cache
    removed: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    model: str = ""
    device: str = ""


_CACHE_LOOKUP_BATCH = 2000


def embed_partition(db_uri: str, repo: str, shard: int, embedder) -> EmbedReport:
    """Give every chunk of a partition exactly one vector from this model, and no more.

    Chunks whose vector exists for the same text and model are left alone; texts seen
    before (anywhere, by this model) come from the cache; only the rest reach the model.
    Holds the partition's lock, like `chunk_partition`.
    """
    with partition_lock(db_uri, repo, shard):
        return _embed_partition(db_uri, repo, shard, embedder)


def _embed_partition(db_uri: str, repo: str, shard: int, embedder) -> EmbedReport:
    work = plan_embedding(db_uri, repo, shard, embedder)
    encode_missing(work, embedder)
    return commit_embedding(work)


@dataclass
class EmbeddingWork:
    """One partition between its reads and its write: what `embed_partition` does in three
    steps, so that a worker can write one partition while it encodes the next."""

    report: EmbedReport
    started: float
    repo: str
    shard: int
    model: str
    dim: int
    vectors_table: object
    cache_table: object
    where: str
    needed: list[dict]  # chunks that need a vector row
    stale_ids: set[str]  # vector rows to delete (chunk gone, text changed or another model)
    first_vectors: bool  # the partition holds no vector yet: nothing to replace
    cached: dict[str, np.ndarray]  # content hash -> vector, from the cache (then the model)
    keys: dict[str, str] = field(default_factory=dict)  # content hash -> cache key, made once
    missing_texts: dict[str, str] = field(default_factory=dict)  # content hash -> text
    fresh: dict[str, np.ndarray] = field(default_factory=dict)  # computed by the model

    @property
    def done(self) -> bool:
        return not self.needed and not self.stale_ids


def plan_embedding(
    db_uri: str, repo: str, shard: int, embedder, known_keys: set[str] | None = None,
    in_memory: Mapping[str, np.ndarray] | None = None,
) -> EmbeddingWork:
    """Read what a partition needs: its chunks, its vectors, and the cache's hits.

    `known_keys`, when given, is the caller's view of the cache's keys (a long-lived worker
    keeps one): keys outside it are not looked up. A key it lacks that the cache has costs a
    second computation of that text, never a wrong vector. `in_memory` holds vectors by
    cache key that the caller computed with this model and may not have written yet; they
    count as cache hits. Call under the partition's lock.
    """
    started = time.perf_counter()
    report = EmbedReport(repo=repo, shard=shard, model=embedder.model_name, device=embedder.device)
    db = storage.connect(db_uri)
    where = storage.partition_filter(repo, shard)
    chunks_table = storage.open_chunks(db)
    vectors_table = storage.open_vectors(db, embedder.dim)
    cache_table = storage.open_cache(db, embedder.dim)

    chunks = storage.read_rows(
        chunks_table, where, ["chunk_id", "path", "file_id", "language", "kind", "start_line", "end_line", "content_hash", "embed_text"]
    ).to_pylist()
    existing = storage.read_rows(vectors_table, where, ["chunk_id", "content_hash", "model"]).to_pylist()
    report.chunks = len(chunks)
    current = {(c["chunk_id"], c["content_hash"]) for c in chunks}
    present = {(v["chunk_id"], v["content_hash"]) for v in existing if v["model"] == embedder.model_name}
    stale = [v["chunk_id"] for v in existing if (v["chunk_id"], v["content_hash"]) not in current or v["model"] != embedder.model_name]
    needed = [c for c in chunks if (c["chunk_id"], c["content_hash"]) not in present]
    report.unchanged = len(chunks) - len(needed)
    work = EmbeddingWork(
        report=report, started=started, repo=repo, shard=shard, model=embedder.model_name,
        dim=embedder.dim, vectors_table=vectors_table, cache_table=cache_table, where=where,
        needed=needed, stale_ids=set(stale) - {c["chunk_id"] for c in needed},
        first_vectors=not existing, cached={},
    )
    if not needed:
        return work
    work.keys = {h: cache_key(h, embedder.model_name) for h in {c["content_hash"] for c in needed}}
    if in_memory:
        work.cached = {h: in_memory[k] for h, k in work.keys.items() if k in in_memory}
    wanted = {h: k for h, k in work.keys.items() if h not in work.cached and (known_keys is None or k in known_keys)}
    if wanted and cache_table.count_rows():
        work.cached.update(_cache_lookup(cache_table, wanted))
    for c in needed:
        if c["content_hash"] not in work.cached:
            work.missing_texts.setdefault(c["content_hash"], c["embed_text"])
    return work


def encode_missing(work: EmbeddingWork, embedder) -> None:
    """Run the model on the texts neither the partition nor the cache had."""
    if not work.missing_texts:
        return
    t0 = time.perf_counter()
    hashes = list(work.missing_texts)
    vectors = embedder.encode([work.missing_texts[h] for h in hashes])
    work.report.embed_seconds = time.perf_counter() - t0
    _check_vectors(vectors, embedder.dim)
    work.fresh = dict(zip(hashes, vectors))


def commit_embedding(work: EmbeddingWork) -> EmbedReport:
    """Write the new cache rows, then the partition's vectors in one commit."""
    report, needed = work.report, work.needed
    if work.done:
        report.seconds = time.perf_counter() - work.started
        return report
    if work.fresh:
        # Just looked up and not found: new, unless another process embedded the same text
        # meanwhile, and then a second row with the same key and vector is harmless. An
        # append costs what it adds; a keyed upsert would join against the whole cache.
        storage.append_rows(work.cache_table, _cache_rows(work.fresh, work.keys, work.model, work.dim))
    cached = {**work.cached, **work.fresh}
    report.embedded = len(work.fresh)
    report.reused = len(needed) - sum(1 for c in needed if c["content_hash"] in work.missing_texts)
    rows = pa.table(
        {
            "chunk_id": [c["chunk_id"] for c in needed],
            "repo": [work.repo] * len(needed),
            "path": [c["path"] for c in needed],
            "file_id": [c["file_id"] for c in needed],
            "shard": pa.array([work.shard] * len(needed), pa.int32()),
            "language": [c["language"] for c in needed],
            "kind": [c["kind"] for c in needed],
            "start_line": pa.array([c["start_line"] for c in needed], pa.int32()),
            "end_line": pa.array([c["end_line"] for c in needed], pa.int32()),
            "content_hash": [c["content_hash"] for c in needed],
            "model": [work.model] * len(needed),
            "vector": _fixed_list([cached[c["content_hash"]] for c in needed], work.dim),
        }
    )
    if work.stale_ids:
        storage.replace_rows(
            work.vectors_table, "chunk_id", rows,
            f"{work.where} AND {storage.id_list_filter('chunk_id', work.stale_ids)}",
        )
    elif rows.num_rows and work.first_vectors:
        storage.append_rows(work.vectors_table, rows)  # a partition's first vectors: nothing to replace
    elif rows.num_rows:
        storage.replace_rows(work.vectors_table, "chunk_id", rows, None)
    report.removed = len(work.stale_ids)
    report.seconds = time.perf_counter() - work.started
    return report


def _fixed_list(vectors: list[np.ndarray], dim: int) -> pa.FixedSizeListArray:
    flat = np.asarray(vectors, dtype=np.float32).reshape(-1) if vectors else np.zeros(0, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)


def _check_vectors(vectors: np.ndarray, dim: int) -> None:
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise storage.StorageError(f"model returned vectors of shape {vectors.shape}, expected (n, {dim})")
    if not np.isfinite(vectors).all():
        raise storage.StorageError("model returned NaN or infinite values")


def cache_key(content_hash: str, model: str) -> str:
    return stable_id(content_hash, model)


def _cache_lookup(table, keys_by_hash: dict[str, str]) -> dict[str, np.ndarray]:
    """Vectors in the cache, by content hash, for these (content hash -> cache key)."""
    keys = {key: h for h, key in keys_by_hash.items()}
    found: dict[str, np.ndarray] = {}
    key_list = list(keys)
    for start in range(0, len(key_list), _CACHE_LOOKUP_BATCH):
        batch = key_list[start : start + _CACHE_LOOKUP_BATCH]
        rows = storage.read_rows(table, storage.id_list_filter("cache_key", batch), ["cache_key", "vector"])
        for key, vector in zip(rows.column("cache_key").to_pylist(), rows.column("vector").to_numpy(zero_copy_only=False)):
            found[keys[key]] = np.asarray(vector, dtype=np.float32)
    return found


def _cache_rows(fresh: dict[str, np.ndarray], keys: dict[str, str], model: str, dim: int) -> pa.Table:
    hashes = list(fresh)
    return pa.table(
        {
            "cache_key": [keys[h] for h in hashes],
            "content_hash": hashes,
            "model": [model] * len(hashes),
            "vector": _fixed_list([fresh[h] for h in hashes], dim),
        }
    )


def default_workers() -> int:
    return os.cpu_count() or 1
