"""How our ONNX encoder should batch on a CPU: batch shape and threads, on real chunk texts.

Each layout encodes exactly the same texts (the distinct embedded texts of a chunked tree,
headers included), in rounds that interleave the layouts, so a busy machine slows each
alike; the best wall and CPU seconds per layout are reported as ratios against the default
layout measured in the same run, with the largest cosine distance of its vectors from the
reference layout's (the model's vectors must not depend on batching).

Layouts: `WxT/B` = W batches at once, each on a session run with T threads, B texts of the
longest length per batch (`batching.length_batch_sizes`: more of shorter ones).

    python -m bench.cpu_batches --tree DIR [--rounds 3] [--texts 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.results import rows_table

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "all-MiniLM-L6-v2"
CORES = os.cpu_count() or 1
BEFORE = (1, CORES, 32)  # one batch at a time on every core, 32 texts (the old layout)


def layouts() -> list[tuple[int, int, int]]:
    """(workers, threads per run, batch size): the default first, then the alternatives."""
    default = (CORES, 1, 4)
    others = [BEFORE, (1, CORES, 4), (CORES, 1, 2), (CORES, 1, 8), (CORES, 1, 16)]
    return [default, *[o for o in others if o != default]]


def chunk_texts(tree: Path, limit: int, seed: int) -> list[str]:
    """The distinct embedded texts of `tree` chunked with the default settings; a seeded
    sample of `limit` when there are more (every length keeps its share)."""
    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.storage import tables as storage

    with tempfile.TemporaryDirectory() as db:
        settings = IndexSettings()
        for shard in range(settings.shards):
            chunk_partition(db, "bench", str(tree), shard, settings)
        table = storage.connect(db).open_table(storage.CHUNKS).to_arrow()
        hashes, texts = table["content_hash"].to_pylist(), table["embed_text"].to_pylist()
        unique = dict(zip(hashes, texts))
    texts = sorted(unique.values())
    if limit and len(texts) > limit:
        texts = random.Random(seed).sample(texts, limit)
    return texts


def measure(texts: list[str], rounds: int) -> list[dict[str, object]]:
    import numpy as np

    from indexer_core.embedding.query_encoder import QueryEncoderOptions, load_onnx_encoder

    encoders = {}
    for workers, threads, batch in layouts():
        encoder = load_onnx_encoder(MODEL, QueryEncoderOptions(), threads, batch, workers)
        if encoder is None:
            raise SystemExit("no ONNX export: run `code-index search` once, or bench.pipeline_cost")
        encoder.encode(texts[:64])  # warm-up
        encoders[(workers, threads, batch)] = encoder
    best: dict[tuple, tuple[float, float]] = {}
    vectors = {}
    for _ in range(rounds):
        for layout, encoder in encoders.items():
            started, cpu = time.perf_counter(), time.process_time()
            vectors[layout] = encoder.encode(texts)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            old = best.get(layout, (float("inf"), float("inf")))
            best[layout] = (min(old[0], wall), min(old[1], cpu))
    reference = vectors[BEFORE]
    default = layouts()[0]
    rows = []
    for layout in encoders:
        cosine = np.einsum("ij,ij->i", vectors[layout], reference)
        rows.append(
            {
                "layout": f"{layout[0]}x{layout[1]}/{layout[2]}",
                "wall_s": round(best[layout][0], 2),
                "cpu_s": round(best[layout][1], 2),
                "wall_over_default": round(best[layout][0] / best[default][0], 3),
                "cpu_over_default": round(best[layout][1] / best[default][1], 3),
                "max_cosine_distance": float(f"{float(np.max(1 - cosine)):.2e}"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench import machine, results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=600, help="sample size; 0 for all")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "reports")
    args = parser.parse_args(argv)
    texts = chunk_texts(args.tree, args.texts, args.seed)
    rows = measure(texts, args.rounds)
    result = {
        "command": "python -m bench.cpu_batches " + " ".join(argv or sys.argv[1:]),
        "when": results.stamp(),
        "machine": machine.one_line(machine.describe()),
        "load_average_at_end": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "texts": len(texts),
        "rounds": args.rounds,
        "layouts": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedding_cpu_batches.json").write_text(json.dumps(result, indent=2))
    md_path = args.out / "embedding_cpu_batches.md"
    md_path.write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {md_path}")
    return 0


def markdown(result: dict[str, object]) -> str:
    lines = ["# Our ONNX encoder's batching on a CPU", ""]
    lines += [f"- {k}: {v}" for k, v in result.items() if k != "layouts"]
    lines += [
        "",
        (
            "Layout `WxT/B`: W batches at once, T threads per session run, B texts of the "
            "longest length per batch. Best of the rounds; ratios against the first row "
            "(the default)."
        ),
        "",
    ]
    columns = {
        "layout": "layout",
        "wall_s": "wall s",
        "cpu_s": "CPU s",
        "wall_over_default": "wall / default",
        "cpu_over_default": "CPU / default",
        "max_cosine_distance": "max cosine distance",
    }
    lines += rows_table(columns, result["layouts"])  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
