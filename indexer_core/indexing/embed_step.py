"""Embedding one partition: every chunk gets exactly one vector from the configured model.

Vectors are keyed by the hash of the exact text embedded plus the model, so unchanged or
moved code is never embedded twice: the partition's own vectors and the `embedding_cache`
table serve every text seen before, and only the rest reach the model. The three steps
(plan, encode, commit) are separate so a long-lived worker can write one partition while
it encodes the next (`embed_worker.py`).

A large partition can be embedded in slices (`part=(index, count)`): the chunks whose id
hashes to that slice, written in their own commit, so several consumers share one partition
that would otherwise keep one of them busy while the others idle. A chunk's slice depends
only on its id and the count, so every writer agrees on it, and slices never overlap.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, fields

import numpy as np
import pyarrow as pa

from indexer_core.discovery.hashing import stable_id
from indexer_core.storage import tables as storage
from indexer_core.storage.locking import partition_lock


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
    # the model's encode; in a worker, its share of the encoder's busy time (they add up)
    embed_seconds: float = 0.0
    read_seconds: float = 0.0  # chunks, vectors and cache look-ups
    write_seconds: float = 0.0  # the cache rows and the vectors' commit
    # a worker's encoder thread waiting for this one's read, or for room behind the writes
    encoder_wait_seconds: float = 0.0
    model: str = ""
    device: str = ""


_CACHE_LOOKUP_BATCH = 2000
# What a vector row and the model need of a chunk, beyond its id and content hash.
_CHUNK_DETAILS = ["path", "file_id", "language", "kind", "start_line", "end_line", "embed_text"]
Part = tuple[int, int]  # (slice index, slice count) of a partition


def slice_of(chunk_id: str, count: int) -> int:
    """The slice of `count` a chunk belongs to: from its id alone, so writers agree."""
    digest = hashlib.blake2b(chunk_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def merge_reports(reports: list[EmbedReport]) -> EmbedReport:
    """One partition's report from its slices' reports (counts and seconds add up)."""
    merged = EmbedReport(repo=reports[0].repo, shard=reports[0].shard)
    for item in fields(EmbedReport):
        values = [getattr(r, item.name) for r in reports]
        if item.type in ("int", "float"):
            setattr(merged, item.name, sum(values))
        elif item.name in ("model", "device"):
            setattr(merged, item.name, values[0])
    return merged


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
    encoded_at: float = 0.0  # `time.perf_counter()` when `fresh` was set

    @property
    def done(self) -> bool:
        return not self.needed and not self.stale_ids


def shards_with_vectors(db: storage.lancedb.DBConnection, repo: str, shards: list[int]) -> set[int]:
    """Of `shards` of `repo`, those the vectors table holds any row of (any model), in one
    scan of one small column. A partition its chunk step left without chunks, outside this
    set, has nothing to read, encode, remove or write: a small repository's many empty
    shards are settled together instead of one read each."""
    table = storage.open_existing(db, storage.VECTORS)
    if table is None or not shards:
        return set()
    where = f"{storage.repo_filter(repo)} AND shard IN ({', '.join(str(int(s)) for s in shards)})"
    return set(storage.read_rows(table, where, ["shard"]).column("shard").to_pylist())


def plan_embedding(
    db_uri: str,
    repo: str,
    shard: int,
    embedder,
    known_keys: set[str] | None = None,
    in_memory: Mapping[str, np.ndarray] | None = None,
    part: Part | None = None,
    db: storage.lancedb.DBConnection | None = None,
    cache_table: storage.lancedb.table.Table | None = None,
) -> EmbeddingWork:
    """Read what a partition (or its slice `part`) needs: its chunks, its vectors, and the
    cache's hits.

    `known_keys`, when given, is the caller's view of the cache's keys (a long-lived worker
    keeps one): keys outside it are not looked up. A key it lacks that the cache has costs a
    second computation of that text, never a wrong vector. `in_memory` holds vectors by
    cache key that the caller computed with this model and may not have written yet; they
    count as cache hits. `db`, a connection the caller keeps across partitions, reads only
    the fragments it has not read before (LanceDB caches them). `cache_table`, the caller's
    open handle on the cache, may lag behind other writers: a key it has not seen yet only
    costs a second computation, and appends through it land on the latest version. Call
    under the partition's lock (for a slice: the slice's lock and the partition's shared
    lock).
    """
    started = time.perf_counter()
    report = EmbedReport(repo=repo, shard=shard, model=embedder.model_name, device=embedder.device)
    db = db if db is not None else storage.connect(db_uri)
    where = storage.partition_filter(repo, shard)
    chunks_table = storage.open_chunks(db)
    vectors_table = storage.open_vectors(db, embedder.dim)
    cache_table = cache_table if cache_table is not None else storage.open_cache(db, embedder.dim)

    # The wide columns (the text above all) only for the chunks that need a vector: a scan
    # would read them from every fragment of the table (`storage.take_rows`).
    chunks = storage.read_rows(
        chunks_table, where, ["chunk_id", "content_hash"], row_ids=True
    ).to_pylist()
    existing = storage.read_rows(
        vectors_table, where, ["chunk_id", "content_hash", "model"]
    ).to_pylist()
    if part is not None:
        index, count = part
        chunks = [c for c in chunks if slice_of(c["chunk_id"], count) == index]
        existing = [v for v in existing if slice_of(v["chunk_id"], count) == index]
    report.chunks = len(chunks)
    current = {(c["chunk_id"], c["content_hash"]) for c in chunks}
    present = {
        (v["chunk_id"], v["content_hash"]) for v in existing if v["model"] == embedder.model_name
    }
    stale = [
        v["chunk_id"]
        for v in existing
        if (v["chunk_id"], v["content_hash"]) not in current or v["model"] != embedder.model_name
    ]
    needed = [c for c in chunks if (c["chunk_id"], c["content_hash"]) not in present]
    details = storage.take_rows(
        chunks_table, [c[storage.ROW_ID] for c in needed], _CHUNK_DETAILS
    ).to_pylist()
    needed = [{**c, **d} for c, d in zip(needed, details)]
    report.unchanged = len(chunks) - len(needed)
    work = EmbeddingWork(
        report=report,
        started=started,
        repo=repo,
        shard=shard,
        model=embedder.model_name,
        dim=embedder.dim,
        vectors_table=vectors_table,
        cache_table=cache_table,
        where=where,
        needed=needed,
        stale_ids=set(stale) - {c["chunk_id"] for c in needed},
        first_vectors=not existing,
        cached={},
    )
    if not needed:
        report.read_seconds = time.perf_counter() - started
        return work
    work.keys = {h: cache_key(h, embedder.model_name) for h in {c["content_hash"] for c in needed}}
    if in_memory:
        work.cached = {h: in_memory[k] for h, k in work.keys.items() if k in in_memory}
    wanted = {
        h: k
        for h, k in work.keys.items()
        if h not in work.cached and (known_keys is None or k in known_keys)
    }
    if wanted and cache_table.count_rows():
        work.cached.update(_cache_lookup(cache_table, wanted))
    for c in needed:
        if c["content_hash"] not in work.cached:
            work.missing_texts.setdefault(c["content_hash"], c["embed_text"])
    report.read_seconds = time.perf_counter() - started
    return work


def reuse_vectors(work: EmbeddingWork, vectors_by_key: Mapping[str, np.ndarray]) -> None:
    """Take texts still missing from `vectors_by_key` (this model's vectors by cache key,
    computed since the partition was read): they count as cache hits, not model work."""
    for content_hash in [h for h in work.missing_texts if work.keys[h] in vectors_by_key]:
        work.cached[content_hash] = vectors_by_key[work.keys[content_hash]]
        del work.missing_texts[content_hash]


def encode_missing(work: EmbeddingWork, embedder) -> None:
    """Run the model on the texts neither the partition nor the cache had."""
    if not work.missing_texts:
        return
    t0 = time.perf_counter()
    encode_missing_async(work, embedder).result()
    work.report.embed_seconds = time.perf_counter() - t0


def encode_missing_async(work: EmbeddingWork, embedder) -> Future[dict[str, np.ndarray]]:
    """`encode_missing` that returns once the texts are queued, where the encoder queues
    (`encode_async`; else it encodes before returning). The future completes once
    `work.fresh` is set, with the fresh vectors by cache key: a later partition that shares
    a text takes it from there instead of encoding it again. `report.embed_seconds` is left
    to the caller, who knows how long the encoder worked on earlier texts meanwhile."""
    hashes = list(work.missing_texts)
    result: Future[dict[str, np.ndarray]] = Future()
    result.set_running_or_notify_cancel()

    def take(vectors: np.ndarray) -> None:
        work.encoded_at = time.perf_counter()
        check_vectors(vectors, embedder.dim)
        work.fresh = dict(zip(hashes, vectors))
        result.set_result({work.keys[h]: v for h, v in work.fresh.items()})

    def settle(encoded: Future[np.ndarray]) -> None:
        try:
            take(encoded.result())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result.set_exception(exc)

    queue = getattr(embedder, "encode_async", None)
    if not hashes:
        result.set_result({})
    elif queue is None:
        try:
            take(embedder.encode([work.missing_texts[h] for h in hashes]))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result.set_exception(exc)
    else:
        queue([work.missing_texts[h] for h in hashes]).add_done_callback(settle)
    return result


def commit_embedding(work: EmbeddingWork) -> EmbedReport:
    """Write the new cache rows, then the partition's vectors in one commit."""
    report, needed = work.report, work.needed
    writing = time.perf_counter()
    if work.done:
        report.seconds = time.perf_counter() - work.started
        return report
    if work.fresh:
        # Just looked up and not found: new, unless another process embedded the same text
        # meanwhile, and then a second row with the same key and vector is harmless. An
        # append costs what it adds; a keyed upsert would join against the whole cache.
        storage.append_rows(
            work.cache_table, _cache_rows(work.fresh, work.keys, work.model, work.dim)
        )
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
            work.vectors_table,
            "chunk_id",
            rows,
            f"{work.where} AND {storage.id_list_filter('chunk_id', work.stale_ids)}",
        )
    elif rows.num_rows and work.first_vectors:
        storage.append_rows(
            work.vectors_table, rows
        )  # a partition's first vectors: nothing to replace
    elif rows.num_rows:
        storage.replace_rows(work.vectors_table, "chunk_id", rows, None)
    report.removed = len(work.stale_ids)
    report.write_seconds = time.perf_counter() - writing
    report.seconds = time.perf_counter() - work.started
    return report


def _fixed_list(vectors: list[np.ndarray], dim: int) -> pa.FixedSizeListArray:
    flat = np.asarray(vectors, dtype=np.float32).reshape(-1) if vectors else np.zeros(0, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)


def check_vectors(vectors: np.ndarray, dim: int) -> None:
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise storage.StorageError(
            f"model returned vectors of shape {vectors.shape}, expected (n, {dim})"
        )
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
        rows = storage.read_rows(
            table, storage.id_list_filter("cache_key", batch), ["cache_key"], row_ids=True
        )
        vectors = storage.take_rows(table, rows.column(storage.ROW_ID).to_pylist(), ["vector"])
        for key, vector in zip(
            rows.column("cache_key").to_pylist(),
            vectors.column("vector").to_numpy(zero_copy_only=False),
        ):
            found[keys[key]] = np.asarray(vector, dtype=np.float32)
    return found


def _cache_rows(
    fresh: dict[str, np.ndarray], keys: dict[str, str], model: str, dim: int
) -> pa.Table:
    hashes = list(fresh)
    return pa.table(
        {
            "cache_key": [keys[h] for h in hashes],
            "content_hash": hashes,
            "model": [model] * len(hashes),
            "vector": _fixed_list([fresh[h] for h in hashes], dim),
        }
    )
