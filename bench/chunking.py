"""Scan + hash, chunking and bare tree-sitter parsing of the same files, on 1..N processes.

Chunking is the production path of a chunk step (`indexing.chunk_file`: read, decode,
tree-sitter chunking within the token budget, context header, hashes). Its limit is a bare
`parser.parse` of the same bytes. Token bound and line coverage are computed outside the
timed region.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from bench.corpora import Corpus
from indexer_core.chunking.files import chunk_file
from indexer_core.chunking.tokens import load_token_counter
from indexer_core.discovery.decoding import DecodedText, decode_source
from indexer_core.discovery.languages import AST_LANGUAGES, get_parser, language_for_path
from indexer_core.discovery.listing import DiscoveryConfig, read_file_bytes, scan_repository
from indexer_core.embedding.model_location import DEFAULT_MODEL
from indexer_core.records import SkippedFile


@dataclass
class FileStats:
    path: str
    size: int
    language: str
    seconds: float
    chunks: int = 0
    parse_seconds: float = 0.0  # bare parse of the same bytes, timed just before chunking
    max_tokens: int = 0
    nonblank: int = 0
    covered: int = 0
    skipped: str = ""


# ---------------------------------------------------------------- worker functions


def _init(model: str) -> None:
    load_token_counter(model)
    for language in ("python", "c", "go", "javascript", "typescript"):
        try:
            get_parser(language)
        except Exception:  # noqa: BLE001, S110 - a missing grammar only matters if used
            pass


def chunk_one(args: tuple[str, str, str, bool]) -> FileStats:
    root, path, model, measure = args
    counter = load_token_counter(model)
    parse_seconds, _ = parse_one((root, path))
    start = time.perf_counter()
    outcome = chunk_file(root, "bench", path, 0, counter)
    seconds = time.perf_counter() - start
    size = os.path.getsize(os.path.join(root, path))
    if isinstance(outcome, SkippedFile):
        return FileStats(path, size, "", seconds, skipped=outcome.reason)
    stats = FileStats(
        path,
        size,
        outcome.language,
        seconds,
        chunks=len(outcome.chunks),
        parse_seconds=parse_seconds,
    )
    if measure and outcome.chunks:
        counts = counter.count_many([c.embed_text for c in outcome.chunks])
        stats.max_tokens = max(counts) + 2  # + [CLS] and [SEP], as the model sees it
        decoded = decode_source(read_file_bytes(root, path))
        if isinstance(decoded, DecodedText):
            lines = decoded.text.split("\n")
            covered = bytearray(len(lines) + 2)
            for c in outcome.chunks:
                covered[c.start_line : c.end_line + 1] = b"\x01" * (c.end_line - c.start_line + 1)
            for row, line in enumerate(lines, 1):
                if line.strip():
                    stats.nonblank += 1
                    stats.covered += covered[row] if row < len(covered) else 0
    return stats


def parse_one(args: tuple[str, str]) -> tuple[float, int]:
    """Bare parse time of one file (0 for files without an AST grammar)."""
    root, path = args
    data = read_file_bytes(root, path)
    language = language_for_path(path) or "text"
    if language not in AST_LANGUAGES:
        return 0.0, 0
    parser = get_parser(language)
    start = time.perf_counter()
    parser.parse(data)
    return time.perf_counter() - start, len(data)


# ---------------------------------------------------------------- measurements


def scan_vs_read(corpus: Corpus, root: str | None = None) -> dict[str, object]:
    """Discovery with hashing of every file against reading the same bytes once."""
    config = DiscoveryConfig(extra_ignores=corpus.ignores, use_git=False)
    where = root or str(corpus.root)
    scan_repository(where, config)  # warm the page cache and directory entries
    t0 = time.perf_counter()
    scan = scan_repository(where, config)
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = 0
    for entry in scan.files:
        total += len(read_file_bytes(where, entry.path))
    read_s = time.perf_counter() - t0
    mb = total / 1e6
    return {
        "files": len(scan.files),
        "skipped": len(scan.skipped),
        "mb": round(mb, 2),
        "hashed": scan.hashed,
        "scan_seconds": round(scan_s, 3),
        "scan_files_per_s": round(len(scan.files) / scan_s, 1),
        "scan_mb_per_s": round(mb / scan_s, 1),
        "read_seconds": round(read_s, 3),
        "read_mb_per_s": round(mb / read_s, 1),
        "scan_over_read": round(scan_s / read_s, 2),
    }


def run_pool(fn, items: list, workers: int, model: str | None = None) -> tuple[list, float]:
    start = time.perf_counter()
    if workers <= 1:
        if model:
            _init(model)
        out = [fn(item) for item in items]
    else:
        init_args = (model,) if model else ()
        context = multiprocessing.get_context("spawn")  # lancedb warns on fork
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init if model else None, initargs=init_args
        ) as pool:
            out = list(pool.map(fn, items, chunksize=4))
    return out, time.perf_counter() - start


def chunk_corpus(
    root: str, paths: list[str], workers: int, model: str = DEFAULT_MODEL, measure: bool = True
) -> dict[str, object]:
    """Chunk every file on `workers` processes: overall and per-core throughput."""
    stats, wall = run_pool(chunk_one, [(root, p, model, measure) for p in paths], workers, model)
    indexed = [s for s in stats if not s.skipped]
    mb = sum(s.size for s in indexed) / 1e6
    busy = sum(s.seconds for s in indexed)
    chunks = sum(s.chunks for s in indexed)
    out: dict[str, object] = {
        "workers": workers,
        "files": len(indexed),
        "skipped": len(stats) - len(indexed),
        "mb": round(mb, 2),
        "chunks": chunks,
        "wall_seconds": round(wall, 3),
        "busy_seconds": round(busy, 3),
        "mb_per_s_overall": round(mb / wall, 2),
        "mb_per_s_per_core": round(mb / busy, 2) if busy else 0.0,
        "chunks_per_s": round(chunks / wall, 1),
    }
    if measure:
        nonblank = sum(s.nonblank for s in indexed)
        out["max_chunk_tokens"] = max((s.max_tokens for s in indexed), default=0)
        out["max_chunk_path"] = max(indexed, key=lambda s: s.max_tokens).path if indexed else ""
        out["nonblank_lines"] = nonblank
        out["covered_share"] = (
            round(sum(s.covered for s in indexed) / nonblank, 6) if nonblank else 1.0
        )
        ast = [s for s in indexed if s.language in AST_LANGUAGES]
        out["ast_files"] = len(ast)
        out["ast_mb"] = round(sum(s.size for s in ast) / 1e6, 2)
        out["ast_busy_seconds"] = round(sum(s.seconds for s in ast), 3)
        # The limit measured file by file, interleaved with chunking: noise on a shared
        # machine hits both sides alike.
        out["ast_parse_seconds_interleaved"] = round(sum(s.parse_seconds for s in ast), 3)
        languages: dict[str, int] = {}
        for s in indexed:
            languages[s.language] = languages.get(s.language, 0) + 1
        out["languages"] = dict(sorted(languages.items(), key=lambda kv: -kv[1]))
    return out


def parse_corpus(root: str, paths: list[str], workers: int) -> dict[str, object]:
    results, wall = run_pool(parse_one, [(root, p) for p in paths], workers)
    busy = sum(r[0] for r in results)
    mb = sum(r[1] for r in results) / 1e6
    return {
        "workers": workers,
        "ast_mb": round(mb, 2),
        "wall_seconds": round(wall, 3),
        "busy_seconds": round(busy, 3),
        "mb_per_s_per_core": round(mb / busy, 2) if busy else 0.0,
        "mb_per_s_overall": round(mb / wall, 2),
    }


def largest_first(root: str, paths: list[str]) -> list[str]:
    """Big files first, so a pool's last task is a small one."""
    return sorted(paths, key=lambda p: -os.path.getsize(os.path.join(root, p)))


def run(
    corpus: Corpus, workers: int, max_mb: float | None = None, model: str = DEFAULT_MODEL
) -> dict[str, object]:
    """The `chunking` benchmark on a corpus (optionally its first `max_mb` by stable order)."""
    from bench.corpora import take

    files = corpus.files()
    if max_mb is not None:
        files = take(files, max_bytes=int(max_mb * 1e6))
    root = str(corpus.root)
    paths = largest_first(root, [f.path for f in files])
    result: dict[str, object] = {"scan": scan_vs_read(corpus) if max_mb is None else None}
    result["parse_1"] = parse_corpus(root, paths, 1)
    result["chunk_1"] = chunk_corpus(root, paths, 1, model)
    if workers > 1:
        result[f"parse_{workers}"] = parse_corpus(root, paths, workers)
        result[f"chunk_{workers}"] = chunk_corpus(root, paths, workers, model, measure=False)
    c1, p1 = result["chunk_1"], result["parse_1"]
    ast_chunk_rate = c1["ast_mb"] / c1["ast_busy_seconds"] if c1["ast_busy_seconds"] else 0.0
    parse_interleaved = c1["ast_parse_seconds_interleaved"]
    result["summary"] = {
        "chunk_mb_per_s_per_core": c1["mb_per_s_per_core"],
        "ast_chunk_mb_per_s_per_core": round(ast_chunk_rate, 2),
        "parse_mb_per_s_per_core": p1["mb_per_s_per_core"],
        "chunk_over_parse_throughput": round(parse_interleaved / c1["ast_busy_seconds"], 3)
        if c1["ast_busy_seconds"]
        else None,
        "chunk_over_parse_separate_passes": round(ast_chunk_rate / p1["mb_per_s_per_core"], 3)
        if p1["mb_per_s_per_core"]
        else None,
        "chunk_mb_per_s_overall": result[f"chunk_{workers}"]["mb_per_s_overall"],
        "parse_mb_per_s_overall": result[f"parse_{workers}"]["mb_per_s_overall"],
        "chunks_per_s_overall": result[f"chunk_{workers}"]["chunks_per_s"],
        "max_chunk_tokens": c1["max_chunk_tokens"],
        "model_max_tokens": load_token_counter(model).max_tokens,
        "covered_share": c1["covered_share"],
        "workers": workers,
    }
    return result
