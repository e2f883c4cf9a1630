"""Incremental reruns on a real corpus: a no-change rescan and a one-file edit against a full index.

    python -m bench.incremental [--corpus cpython] [--shards 64] [--out bench/results]

Steps, all in one run on a copy of the corpus:
1. reading every file once (the limit for a rescan), warm from the page cache and cold (each
   file evicted with posix_fadvise first); then a full index, chunking only (every shard, one
   process), and the manifest compaction a run's join step does;
2. the shard holding the file to edit gets its vectors (setup, not timed as part of the edit);
3. no-change rescan: what a sensor tick costs (scan with the size+mtime fast path, data
   versions on both sides) and how many shards it finds stale (must be 0); the first tick,
   then the median of the next five (a sensor ticks every 30 s on an unchanged tree); then
   the same with the sensor's inotify watch, which skips the scan while it sees no event;
4. edit one file: the watched tick must find its shard; then the sensor tick (stat scan)
   plus the run's own work: re-chunk the stale shard and embed only the chunk texts never
   embedded before. Prints files parsed and chunks embedded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import corpora, machine, results
from indexer_core.embedding.model import load_embedder
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.partitioning import shard_of
from indexer_core.indexing.settings import IndexSettings
from indexer_core.indexing.staleness import detect_changes
from indexer_core.storage.housekeeping import compact_manifest

REPO = "bench"
RESCAN_REPEATS = 5


def _copy_corpus(corpus: corpora.Corpus, dest: Path) -> list[str]:
    files = corpus.files()
    for entry in files:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(corpus.root / entry.path, target)
    return [f.path for f in files]


def _stale(
    db: str, root: Path, settings: IndexSettings, watch: bool = False
) -> tuple[list[int], float, int]:
    """A sensor tick's work; vectors are left out since only one shard is embedded here."""
    changes = detect_changes(db, REPO, str(root), settings, include_vectors=False, watch=watch)
    assert changes.scanned or watch
    return sorted(changes.stale), changes.seconds, changes.files_hashed


def _read_every_file(root: Path, paths: list[str]) -> tuple[int, float]:
    """Bytes and seconds to read every file once: the limit a rescan is held to."""
    start = time.perf_counter()
    total = 0
    for path in paths:
        with open(root / path, "rb") as handle:
            total += len(handle.read())
    return total, time.perf_counter() - start


def _evict(root: Path, paths: list[str]) -> None:
    """Drop the files from the page cache (no root needed), so the next read comes from disk.

    Pages just written are dirty and stay cached until written back: sync first."""
    os.sync()
    for path in paths:
        fd = os.open(root / path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run(corpus_name: str, shards: int, out: Path, work: Path | None) -> dict:
    corpus = corpora.resolve(corpus_name)
    work = work or Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    root, db = work / "repo", str(work / "lancedb")
    shutil.rmtree(work, ignore_errors=True)
    root.mkdir(parents=True)
    paths = _copy_corpus(corpus, root)
    settings = IndexSettings(shards=shards, use_git=False)
    info = machine.describe()
    result: dict = {
        "bench": "incremental",
        "machine": info,
        "machine_line": machine.one_line(info),
        "corpus": corpus.name,
        "corpus_root": str(corpus.root),
        "date": results.stamp(),
        "command": f"python -m bench.incremental --corpus {corpus_name} --shards {shards}",
        "files": len(paths),
        "shards": shards,
        "sections": {},
    }
    started = time.perf_counter()

    total_bytes, read_once = _read_every_file(root, paths)
    _evict(root, paths)
    _, read_once_cold = _read_every_file(root, paths)

    start = time.perf_counter()
    reports = [chunk_partition(db, REPO, str(root), s, settings) for s in range(shards)]
    compact_manifest(db)  # what the run's join step does after its chunk steps
    full_chunk = time.perf_counter() - start
    total_chunks = sum(r.chunks_total for r in reports)

    target = (
        next(p for p in sorted(paths) if p.endswith("json/encoder.py"))
        if any(p.endswith("json/encoder.py") for p in paths)
        else sorted(paths)[len(paths) // 2]
    )
    shard = shard_of(target, shards)
    embedder = load_embedder(settings.model, "auto", 0)
    setup = embed_partition(db, REPO, shard, embedder)
    encode_rate = setup.embedded / setup.embed_seconds if setup.embed_seconds else 0.0

    stale, rescan_seconds, rescan_hashed = _stale(db, root, settings)
    repeats = [_stale(db, root, settings) for _ in range(RESCAN_REPEATS)]
    steady = statistics.median(r[1] for r in repeats)
    # The sensor also counts vectors per shard (only one shard has them here, so its stale
    # list is long): its cost, first and then on unchanged tables.
    with_vectors = [
        detect_changes(db, REPO, str(root), settings).seconds for _ in range(RESCAN_REPEATS + 1)
    ]
    # The sensor's default: an inotify watch on the tree. Its first two ticks scan (the second
    # because the watches were added after the first scan began); then a quiet tree is not scanned.
    watch_setup = [_stale(db, root, settings, watch=True) for _ in range(2)]
    watched = [_stale(db, root, settings, watch=True) for _ in range(RESCAN_REPEATS)]

    with open(root / target, "a", encoding="utf-8") as handle:
        handle.write("\n\ndef _bench_incremental_marker(value):\n    return value * 2\n")
    watched_after_edit = _stale(db, root, settings, watch=True)
    start = time.perf_counter()
    stale_after, tick_seconds, _ = _stale(db, root, settings)
    chunked = [chunk_partition(db, REPO, str(root), s, settings) for s in stale_after]
    compact_manifest(db)
    embedded = [embed_partition(db, REPO, s, embedder) for s in stale_after]
    edit_seconds = time.perf_counter() - start

    est_full_embed = total_chunks / encode_rate if encode_rate else float("nan")
    result["full_index"] = {
        "bytes": total_bytes,
        "chunks": total_chunks,
        "chunking_seconds": round(full_chunk, 2),
        "estimated_embedding_seconds": round(est_full_embed, 1),
        "encode_chunks_per_s": round(encode_rate, 1),
        "read_every_file_once_seconds": round(read_once, 3),
        "read_every_file_once_cold_seconds": round(read_once_cold, 3),
    }
    result["no_change_rescan"] = {
        "seconds": round(rescan_seconds, 3),
        "stale_shards": len(stale),
        "files_hashed": rescan_hashed,
        "over_read_once": round(rescan_seconds / read_once, 3) if read_once else None,
        "over_read_once_cold": round(rescan_seconds / read_once_cold, 3)
        if read_once_cold
        else None,
        f"median_of_next_{RESCAN_REPEATS}_seconds": round(steady, 3),
        "median_over_read_once": round(steady / read_once, 3) if read_once else None,
        "stale_in_repeats": sum(len(r[0]) for r in repeats),
        "with_vector_check_first_seconds": round(with_vectors[0], 3),
        "with_vector_check_median_seconds": round(statistics.median(with_vectors[1:]), 3),
        "watched_setup_ticks_seconds": [round(t[1], 3) for t in watch_setup],
        f"watched_median_of_{RESCAN_REPEATS}_seconds": round(
            statistics.median(t[1] for t in watched), 4
        ),
        "watched_median_over_read_once": round(
            statistics.median(t[1] for t in watched) / read_once, 3
        ),
        "watched_median_over_read_once_cold": round(
            statistics.median(t[1] for t in watched) / read_once_cold, 3
        ),
        "watched_stale": sum(len(t[0]) for t in watch_setup + watched),
    }
    result["one_file_edit"] = {
        "edited": target,
        "stale_shards": stale_after,
        "sensor_tick_seconds": round(tick_seconds, 3),
        "watched_tick_stale_shards": watched_after_edit[0],
        "watched_tick_seconds": round(watched_after_edit[1], 3),
        "tick_plus_run_seconds": round(edit_seconds, 3),
        "files_parsed": sum(r.parsed for r in chunked),
        "chunks_embedded": sum(e.embedded for e in embedded),
        "chunks_reused_or_unchanged": sum(e.reused + e.unchanged for e in embedded),
        "over_full_chunking": round(edit_seconds / full_chunk, 4),
        "over_full_index": round(edit_seconds / (full_chunk + est_full_embed), 5),
    }
    result["sections"] = {k: result[k] for k in ("full_index", "no_change_rescan", "one_file_edit")}
    result["seconds"] = round(time.perf_counter() - started, 1)
    for section, data in result["sections"].items():
        print(section, data, flush=True)
    results.write(result, out, f"incremental_{corpus.name}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="cpython")
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run(args.corpus, args.shards, args.out, args.work)


if __name__ == "__main__":
    main()
