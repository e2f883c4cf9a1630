"""Query latency (p50/p95, query embedding included) on a 100k-row index, flat vs ANN.

The 100k rows are synthesised: real CPython stdlib files are chunked and embedded once
(about --base chunks), then the chunks are replicated under new ids and paths with small
Gaussian noise on each vector (renormalised). The output says so. Measured through
`indexer_core.search.search` as the CLI and MCP server call it (process-wide caches warm),
in vector and hybrid mode, first with flat search, then with the ANN index built. Last, the
index reads of a query are timed one by one (ANN search, BM25, the top hits' content).

    python bench/search_latency.py [--rows 100000] [--base 1000] [--rounds 3] [--work DIR]

With --work the built 100k-row database is kept and a rerun only re-measures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from indexer_core.discovery.hashing import stable_id
from indexer_core.embedding.model import load_embedder
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.search import indexes as search_index
from indexer_core.search.index_view import open_index
from indexer_core.search.query import search
from indexer_core.storage import tables as storage

QUERIES = [
    "parse a header line",
    "open a file and read its lines",
    "HTTPResponse.read",
    "parse_headers",
    "compute a checksum of bytes",
    "format a date as a string",
    "split a path into directory and name",
    "retry the connection after a timeout",
    "encode text as base64",
    "sort items by key",
    "read configuration from an ini file",
    "escape html special characters",
    "JSONDecoder.decode",
    "create a temporary directory",
    "compare two sequences and report differences",
    "quote a url",
    "walk a directory tree",
    "start a thread pool",
    "hash a password",
    "compress data with zlib",
]


def base_index(work: Path, n_chunks: int, embedder) -> str:
    """Real stdlib chunks, embedded: the seed rows that get replicated."""
    import shutil
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    src = work / "src"
    src.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        if total > n_chunks * 1500:  # ~1.5 kB per chunk
            break
        shutil.copy(path, src / path.name)
        total += path.stat().st_size
    db_uri = str(work / "base")
    chunk_partition(
        db_uri,
        "stdlib",
        str(src),
        0,
        IndexSettings(shards=1, use_git=False, model=embedder.model_name),
    )
    embed_partition(db_uri, "stdlib", 0, embedder)
    return db_uri


def replicate(base_uri: str, out_uri: str, rows: int, noise: float, seed: int) -> int:
    db = storage.connect(base_uri)
    chunks = db.open_table(storage.CHUNKS).to_arrow().to_pylist()
    vectors = {r["chunk_id"]: r for r in db.open_table(storage.VECTORS).to_arrow().to_pylist()}
    chunks = [c for c in chunks if c["chunk_id"] in vectors]
    rng = np.random.default_rng(seed)
    copies = -(-rows // len(chunks))
    out = storage.connect(out_uri)
    dim = len(next(iter(vectors.values()))["vector"])
    ctable = out.create_table(storage.CHUNKS, schema=storage.CHUNKS_SCHEMA)
    vtable = out.create_table(storage.VECTORS, schema=storage.vectors_schema(dim))
    made = 0
    for copy in range(copies):
        batch = chunks[: rows - made]
        if not batch:
            break
        new_c, new_v = [], []
        base = np.stack([np.asarray(vectors[c["chunk_id"]]["vector"], np.float32) for c in batch])
        noisy = base + rng.normal(0, noise, base.shape).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        for c, vec in zip(batch, noisy):
            cid = stable_id(c["chunk_id"], copy)
            path = f"copy{copy:03d}/{c['path']}"
            new_c.append(
                {
                    **c,
                    "chunk_id": cid,
                    "path": path,
                    "parent_id": stable_id(c["parent_id"], copy) if c["parent_id"] else "",
                }
            )
            v = vectors[c["chunk_id"]]
            new_v.append({**v, "chunk_id": cid, "path": path, "vector": vec.tolist()})
        ctable.add(pa.Table.from_pylist(new_c, schema=storage.CHUNKS_SCHEMA))
        vtable.add(pa.Table.from_pylist(new_v, schema=storage.vectors_schema(dim)))
        made += len(batch)
    return made


def timed(
    db_uri: str, mode: str, queries: list[str], rounds: int, embedder
) -> tuple[dict, list[list[str]]]:
    for q in queries[:3]:
        search(db_uri, q, k=10, mode=mode, embedder=embedder)  # warm caches: tables, name catalogue
    times, results = [], []
    for _ in range(rounds):
        for q in queries:
            t0 = time.perf_counter()
            hits = search(db_uri, q, k=10, mode=mode, embedder=embedder)
            times.append((time.perf_counter() - t0) * 1000)
            results.append([h.chunk_id for h in hits])
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "n": len(times),
    }, results


def _percentiles(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
    }


def stage_timings(db_uri: str, queries: list[str], rounds: int, embedder) -> dict:
    """The LanceDB reads of a query one by one, as search() issues them (row ids only for the
    rankings, content by row id for the top 10), to show where the rest of a query goes."""
    index = open_index(db_uri)
    catalog = index.catalog()
    chunks, vectors = index.table(storage.CHUNKS), index.table(storage.VECTORS)
    vector_rows = index.vector_rows(vectors.version)
    probes = {q: embedder.encode_query(q) for q in queries}
    out: dict[str, list[float]] = {
        "vector_search": [],
        "bm25": [],
        "hit_content_top10": [],
        "version_read": [],
    }
    for _ in range(rounds):
        for q in queries:
            t0 = time.perf_counter()
            rows = (
                vectors.search(probes[q], vector_column_name="vector")
                .distance_type("cosine")
                .limit(50)
            )
            rows = rows.select(["_distance"]).with_row_id(True).to_arrow()
            ids = [
                c for c in vector_rows.chunk_ids(vectors, rows.column("_rowid").to_pylist()) if c
            ]
            t1 = time.perf_counter()
            text = chunks.search(
                q, query_type="fts", fts_columns=list(search_index.FTS_COLUMNS)
            ).limit(50)
            text.select(["_score"]).with_row_id(True).to_arrow()
            t2 = time.perf_counter()
            catalog.contents(chunks, ids[:10])
            t3 = time.perf_counter()
            _ = chunks.version
            t4 = time.perf_counter()
            for key, (a, b) in zip(out, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                out[key].append((b - a) * 1000)
    return {key: _percentiles(times) for key, times in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--base", type=int, default=1000, help="real chunks embedded, then replicated"
    )
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--work", help="keep the built databases here; a rerun reuses them")
    parser.add_argument("--device", default="auto", help="query embedding device (auto, cpu, cuda)")
    parser.add_argument(
        "--query-encoder",
        choices=["search", "torch"],
        default="search",
        help="search: what `search()` loads for queries (the ONNX export when there is "
        "one, exported on first use); torch: the sentence-transformers model",
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "search_latency.json")
    )
    args = parser.parse_args()
    embedder = load_embedder(args.model, args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def record(key: str, value) -> None:  # print and write after each section: partial results land
        report[key] = value
        print(f"{key}: {value}", flush=True)
        out.write_text(json.dumps(report, indent=2))

    report: dict = {
        "synthetic": f"{args.rows} rows replicated from ~{args.base} real embedded stdlib chunks, "
        f"Gaussian noise sd {args.noise} per vector component, renormalised",
        "model": args.model,
        "device": embedder.device,
        "cpus": os.cpu_count(),
        "torch_threads_for_queries": int(os.environ.get("CODE_INDEX_QUERY_THREADS", "1")),
    }
    print(report["synthetic"])
    with tempfile.TemporaryDirectory(prefix="search-latency-") as tmp:
        work = Path(args.work or tmp)
        uri = str(work / "big")
        done = work / "big.done"
        if not done.exists():
            import shutil

            shutil.rmtree(uri, ignore_errors=True)
            t0 = time.perf_counter()
            base_uri = base_index(work, args.base, embedder)
            report["rows"] = replicate(base_uri, uri, args.rows, args.noise, seed=1)
            report["build_seconds"] = round(time.perf_counter() - t0, 1)
            report["fts_seconds"] = round(search_index.build_fts_indexes(uri).seconds, 1)
            done.write_text(str(report["rows"]))
        else:
            report["rows"] = int(done.read_text())
        search_index.build_vector_index(uri, min_rows=10**12)  # drop any ANN index: flat first
        if args.query_encoder == "search":
            from indexer_core.search.query import load_query_encoder

            embedder = load_query_encoder(args.model)
            embedder = load_query_encoder(args.model)  # the export, made by the line above if new
        record("query_encoder", f"{type(embedder).__name__} on {embedder.device}")
        embedder.encode(QUERIES)
        emb = []
        for q in QUERIES * args.rounds:
            t0 = time.perf_counter()
            embedder.encode_query(q)
            emb.append((time.perf_counter() - t0) * 1000)
        record("query_embedding_ms", _percentiles(emb))
        flat = {}
        for mode in ("vector", "hybrid", "text"):
            timing, flat[mode] = timed(uri, mode, QUERIES, args.rounds, embedder)
            record(f"flat_{mode}", timing)
        build = search_index.build_vector_index(uri, min_rows=0)
        record("ann_index", build.built)
        record("ann_build_seconds", round(build.seconds, 1))
        for mode in ("vector", "hybrid"):
            timing, ann = timed(uri, mode, QUERIES, args.rounds, embedder)
            overlap = [len(set(a) & set(f)) / max(1, len(f)) for a, f in zip(ann, flat[mode])]
            timing["top10_overlap_with_flat"] = round(statistics.fmean(overlap), 3)
            record(f"ann_{mode}", timing)
        record("ann_stages", stage_timings(uri, QUERIES, args.rounds, embedder))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
