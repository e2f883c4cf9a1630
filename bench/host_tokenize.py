"""The host side of a GPU encode on this machine: tokens per second that batches are prepared.

On a GPU, MiniLM's forward pass is faster than preparing its input, so the rate at which the
host turns texts into a batch's features bounds the encoder. This measures, on the distinct
embedded texts of a chunked tree, the ways the pipelined encoder can prepare batches of
`PIPELINE_BATCH` texts (longest first, as it batches them):
- the model's own `preprocess` (sentence-transformers, through the transformers tokenizer);
- `fast_features` with the Rust tokenizer's `encode_batch_fast` (truncation set once, numpy
  padding), which releases the GIL;
- `fast_features` with the segment cache (`wordpiece_ids`, what the pipelined encoder uses
  for BERT-style tokenizers), in Python under the GIL; built afresh each round, so every
  round starts from an empty cache, as a run does;
each on 1 thread and on `--threads` threads, in interleaved rounds, best round reported,
with each way's ratio against the model's own in the same run. No GPU needed: this is the
CPU work a GPU encode does.

    python -m bench.host_tokenize --tree DIR [--threads N] [--rounds 3] [--texts 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from bench.results import rows_table

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "all-MiniLM-L6-v2"


def prepare_all(prepare, batches: list[list[str]], threads: int) -> tuple[float, float, int]:
    """(wall s, CPU s, tokens) to prepare every batch on `threads` threads."""
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        masks = list(pool.map(lambda batch: prepare(batch)["attention_mask"], batches))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return wall, cpu, int(sum(int(mask.sum()) for mask in masks))


def measure(texts: list[str], threads: int, rounds: int) -> list[dict[str, object]]:
    from indexer_core.embedding.fast_features import fast_features
    from indexer_core.embedding.model import PIPELINE_BATCH, length_batches, load_embedder
    from indexer_core.embedding.wordpiece_ids import WordPieceIds

    model = load_embedder(MODEL, "cpu").model
    fast = fast_features(model)
    if fast is None or fast.ids is None:
        raise RuntimeError(f"{MODEL}: the fast features differ from the model's own")
    longest_first = sorted(texts, key=len, reverse=True)
    batches = length_batches(longest_first, PIPELINE_BATCH)
    ways = {
        "model's preprocess": lambda: model.preprocess,
        "fast_features, Rust tokenizer": lambda: replace(fast, ids=None),
        "fast_features, segment cache": lambda: replace(
            fast, ids=WordPieceIds.from_tokenizer(fast.tokenizer, fast.ids.max_tokens)
        ),
    }
    best: dict[tuple[str, int], tuple[float, float, int]] = {}
    for _ in range(rounds):
        for name, way in ways.items():
            for n in sorted({1, threads}):
                got = prepare_all(way(), batches, n)
                key = (name, n)
                if key not in best or got[0] < best[key][0]:
                    best[key] = got
    rows = []
    for (name, n), (wall, cpu, tokens) in best.items():
        own_wall = best[("model's preprocess", n)][0]
        rows.append(
            {
                "way": name,
                "threads": n,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "tokens": tokens,
                "tokens_per_s": round(tokens / wall),
                "tokens_per_cpu_s": round(tokens / cpu) if cpu else None,
                "speed_over_models_own": round(own_wall / wall, 2),
            }
        )
    return rows


def markdown(result: dict[str, object]) -> str:
    lines = ["# The host side of a GPU encode: preparing batches", ""]
    lines += [f"- {k}: {v}" for k, v in result.items() if k != "rows"]
    lines += [
        "",
        (
            "Best of the rounds. `speed` is the model's own preprocess wall over this row's, "
            "same threads, same run."
        ),
        "",
    ]
    columns = {
        "way": "way",
        "threads": "threads",
        "wall_s": "wall s",
        "cpu_s": "CPU s",
        "tokens_per_s": "tokens/s",
        "tokens_per_cpu_s": "tokens per CPU s",
        "speed_over_models_own": "speed vs model's own",
    }
    lines += rows_table(columns, result["rows"])  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench import machine, results
    from bench.cpu_batches import chunk_texts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=0, help="sample size; 0 for all")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "reports")
    args = parser.parse_args(argv)
    texts = chunk_texts(args.tree, args.texts, args.seed)
    result = {
        "command": "python -m bench.host_tokenize " + " ".join(argv or sys.argv[1:]),
        "when": results.stamp(),
        "machine": machine.one_line(machine.describe()),
        "texts": len(texts),
        "rounds": args.rounds,
        "rows": measure(texts, args.threads, args.rounds),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "host_tokenize.json").write_text(json.dumps(result, indent=2))
    path = args.out / "host_tokenize.md"
    path.write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
