"""Peak memory of a chunk step vs partition size and repository size; of the embedder vs batch size.

The corpus is the .py files of CPython's standard library (site-packages excluded), copied
into three repositories: 1/4, 1/2 and all of it. Each chunk step runs `chunk_partition` for
shard 0 in a fresh child process and reports the kernel's peak RSS (VmHWM), in two series:
- fixed shard count (8): a partition grows with the repository;
- fixed partition size: shards grow with the repository (8, 16, 32), a partition does not.
If memory follows the partition, the first series grows and the second stays flat.

The embedding worker's peak is measured the same way for several batch sizes over the same
texts, on CPU unless a GPU is present. Writes bench/results/bounded_memory.json.

    python -m bench.bounded_memory
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT / "bench" / "results"
FRACTIONS = {"quarter": 4, "half": 2, "all": 1}

_CHUNK_CHILD = """
import json, sys, time
from bench.memory import self_peak_mb
from indexer_core.indexing.settings import IndexSettings
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.chunking.tokens import load_token_counter
db, root, shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
load_token_counter(IndexSettings().model)
before = self_peak_mb()
t0 = time.perf_counter()
r = chunk_partition(db, "stdlib", root, 0, IndexSettings(shards=shards, use_git=False))
print(json.dumps({"peak_mb": self_peak_mb(), "peak_before_mb": before, "files": r.files,
                  "bytes_parsed": r.bytes_parsed, "chunks": r.chunks_total,
                  "seconds": round(time.perf_counter() - t0, 1)}))
"""

_EMBED_CHILD = """
import json, sys, time
from bench.memory import self_peak_mb
from indexer_core.embedding.model import load_embedder
from indexer_core.embedding.model_location import DEFAULT_MODEL
texts = json.load(open(sys.argv[1]))
embedder = load_embedder(DEFAULT_MODEL, sys.argv[3], int(sys.argv[2]))
embedder.encode(texts[:2])
before = self_peak_mb()
t0 = time.perf_counter()
embedder.encode(texts)
print(json.dumps({"peak_mb": self_peak_mb(), "peak_after_load_mb": before, "device":
embedder.device,
                  "texts": len(texts), "seconds": round(time.perf_counter() - t0, 1)}))
"""


def stdlib_files() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and p.is_file())


def build_repos(work: Path, files: list[Path]) -> dict[str, Path]:
    """Each fraction takes every n-th file, so all three share the same mix of file sizes."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    repos = {}
    for name, step in FRACTIONS.items():
        root = work / name
        for path in files[::step]:
            target = root / path.relative_to(stdlib)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        repos[name] = root
    return repos


def _child(code: str, *args: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def chunk_series(work: Path, repos: dict[str, Path], base_shards: int) -> dict:
    series: dict[str, dict] = {"fixed_shard_count": {}, "fixed_partition_size": {}}
    for name, root in repos.items():
        files = sum(1 for _ in root.rglob("*.py"))
        for mode, shards in (
            ("fixed_shard_count", base_shards),
            ("fixed_partition_size", base_shards * 4 // FRACTIONS[name]),
        ):
            result = _child(_CHUNK_CHILD, str(work / f"db-{name}-{shards}"), str(root), str(shards))
            series[mode][name] = {"repo_files": files, "shards": shards, **result}
            print(
                f"chunk {mode:<22} {name:<8} {files:>5} files, {shards:>2} shards: "
                f"{result['files']:>4} files in shard 0, peak {result['peak_mb']} MB "
                f"(before chunking {result['peak_before_mb']} MB)",
                flush=True,
            )
    return series


def embed_series(
    work: Path, repos: dict[str, Path], batch_sizes: list[int], texts: int, device: str
) -> dict:
    chunks = []
    for path in sorted(repos["all"].rglob("*.py")):
        source = path.read_text(encoding="utf-8", errors="replace")
        chunks += [source[i : i + 1200] for i in range(0, len(source), 1200)]
        if len(chunks) >= texts:
            break
    corpus = work / "texts.json"
    corpus.write_text(json.dumps(chunks[:texts]))
    series = {}
    for size in batch_sizes:
        result = _child(_EMBED_CHILD, str(corpus), str(size), device)
        series[str(size)] = result
        print(
            f"embed batch {size:>4}: peak {result['peak_mb']} MB "
            f"(after model load {result['peak_after_load_mb']} MB) on {result['device']}",
            flush=True,
        )
    return series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shards", type=int, default=8, help="shard count of the fixed-count series"
    )
    parser.add_argument("--batch-sizes", default="8,32,128")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-embed", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-bounded-memory-"))
    try:
        files = stdlib_files()
        repos = build_repos(work, files)
        result = {
            "bench": "bounded_memory",
            "corpus": "cpython stdlib *.py",
            "stdlib_py_files": len(files),
            "chunk_step": chunk_series(work, repos, args.shards),
        }
        if not args.skip_embed:
            sizes = [int(s) for s in args.batch_sizes.split(",")]
            result["embedder"] = embed_series(work, repos, sizes, args.texts, args.device)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bounded_memory.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
