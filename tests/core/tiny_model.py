"""A tiny sentence-transformers model built locally (none can be downloaded here): one BERT
layer of random weights (fixed seed) over the packaged model's tokenizer, its own maximum
length and the prompts a retrieval model declares."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

QUERY_PROMPT = "Represent this query for searching relevant code: "


def build_tiny_model(
    target: Path, max_seq_length: int = 64, prompts: dict[str, str] | None = None
) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    from indexer_core.embedding.model_location import resolve_model_path

    source = resolve_model_path("all-MiniLM-L6-v2")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, target / name)
    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(target)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (target / "modules.json").write_text(json.dumps(modules))
    (target / "1_Pooling").mkdir(exist_ok=True)
    (target / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (target / "2_Normalize").mkdir(exist_ok=True)
    (target / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    (target / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts if prompts is not None else {"query": QUERY_PROMPT}})
    )
    return target
