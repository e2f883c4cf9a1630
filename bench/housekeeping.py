"""Table size, version count and query latency after N single-file updates, with and without cleanup.

Two databases receive the same sequence of incremental runs (edit one file, re-chunk and
re-embed its partition). One is never optimized; the other runs `optimize_index` every
`--cleanup-every` updates and once at the end. Vectors come from a hash of the text, since
the model plays no part in table layout. Writes JSON to bench/results/housekeeping.json. Each incremental run gets slower as
versions pile up, so 1000 updates take tens of minutes on a small machine: `--updates`.

    python -m bench.housekeeping --updates 1000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from indexer_core import storage
from indexer_core.housekeeping import directory_bytes, optimize_index
from indexer_core.indexing import IndexSettings, chunk_partition, embed_partition
from indexer_core.partitioning import shard_of

RESULTS = Path(__file__).resolve().parent / "results"
REPO = "bench"


@dataclass
class TextHashEmbedder:
    """Deterministic unit vectors from the text: the table layout is all this bench measures."""

    model_name: str = "text-hash"
    device: str = "cpu"
    dim: int = 384

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def make_repo(root: Path, files: int) -> None:
    for i in range(files):
        path = root / f"pkg{i % 10}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(
            f"def f_{i}_{j}(x):\n" + "".join(f"    x = x * {k} + {j}\n" for k in range(10)) + "    return x\n\n\n"
            for j in range(6)))


def query_latency(db_uri: str, repeats: int) -> dict[str, float]:
    """Median ms of a vector search and of a filtered count, on a freshly opened table."""
    db = storage.connect(db_uri)
    vectors, chunks = db.open_table(storage.VECTORS), db.open_table(storage.CHUNKS)
    probe = TextHashEmbedder().encode(["query"])[0]
    vector_ms, filter_ms = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        vectors.search(probe).limit(10).to_arrow()
        vector_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        chunks.count_rows(f"{storage.repo_filter(REPO)} AND path = 'pkg{i % 10}/mod{i}.py'")
        filter_ms.append((time.perf_counter() - t0) * 1000)
    return {"vector_search_ms": round(statistics.median(vector_ms), 2),
            "filtered_count_ms": round(statistics.median(filter_ms), 2)}


def measure(db_uri: str, repeats: int) -> dict:
    db = storage.connect(db_uri)
    return {
        "disk_mb": round(directory_bytes(db_uri) / 1e6, 2),
        "versions": {n: len(db.open_table(n).list_versions()) for n in sorted(storage.table_names(db))},
        **query_latency(db_uri, repeats),
    }


def run(updates: int, files: int, shards: int, cleanup_every: int, repeats: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-housekeeping-"))
    root = work / "repo"
    make_repo(root, files)
    settings = IndexSettings(shards=shards, use_git=False)
    embedder = TextHashEmbedder()
    dbs = {"without_cleanup": str(work / "plain"), "with_cleanup": str(work / "cleaned")}
    for db_uri in dbs.values():
        for shard in range(shards):
            chunk_partition(db_uri, REPO, str(root), shard, settings)
            embed_partition(db_uri, REPO, shard, embedder)
    started = time.perf_counter()
    cleanup_seconds = 0.0
    recent = {name: [] for name in dbs}  # seconds per incremental run, last 50, per database
    for step in range(updates):
        i = step % files
        path = root / f"pkg{i % 10}" / f"mod{i}.py"
        path.write_text(path.read_text() + f"\n\ndef update_{step}(x):\n    return x + {step}\n")
        shard = shard_of(f"pkg{i % 10}/mod{i}.py", shards)
        for name, db_uri in dbs.items():
            t0 = time.perf_counter()
            chunk_partition(db_uri, REPO, str(root), shard, settings)
            embed_partition(db_uri, REPO, shard, embedder)
            recent[name] = [*recent[name][-49:], time.perf_counter() - t0]
            if name == "with_cleanup" and (step + 1) % cleanup_every == 0:
                t0 = time.perf_counter()
                optimize_index(db_uri, grace=timedelta(0))
                cleanup_seconds += time.perf_counter() - t0
        if (step + 1) % 50 == 0:
            per_run = ", ".join(f"{n} {statistics.median(v) * 1000:.0f} ms/run" for n, v in recent.items())
            print(f"{step + 1}/{updates} updates, {time.perf_counter() - started:.0f}s; {per_run}", flush=True)
    t0 = time.perf_counter()
    optimize_index(dbs["with_cleanup"], grace=timedelta(0))
    cleanup_seconds += time.perf_counter() - t0
    measured = {name: measure(db_uri, repeats) for name, db_uri in dbs.items()}
    for name, times in recent.items():
        measured[name]["last_runs_median_ms"] = round(statistics.median(times) * 1000, 1)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "bench": "housekeeping", "updates": updates, "files": files, "shards": shards,
        "cleanup_every": cleanup_every, "update_seconds_total": round(time.perf_counter() - started, 1),
        "cleanup_seconds_total": round(cleanup_seconds, 2),
        **measured,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--cleanup-every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    result = run(args.updates, args.files, args.shards, args.cleanup_every, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "housekeeping.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
