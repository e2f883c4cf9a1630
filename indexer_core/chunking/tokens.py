"""Counting text in the embedding model's own tokens, without loading the model itself.

Chunk steps need the tokenizer only, so they never import torch: a `TokenCounter` loads the
model's `tokenizer.json` with the Rust `tokenizers` library.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

from indexer_core.embedding.model_location import resolve_model_path

# Tokens that the model adds around every input ([CLS] and [SEP] for BERT-like models).
_SPECIAL_TOKEN_RESERVE = 2


@dataclass
class TokenCounter:
    """Counts tokens exactly as the embedding model will see them, minus special tokens."""

    tokenizer: Tokenizer
    max_tokens: int
    document_prefix: str = ""  # the model's document prompt (`embedding/prompts.py`)

    @property
    def budget(self) -> int:
        """Tokens available to a chunk's embedded text (header and content together), after
        the special tokens and the model's document prefix."""
        return self.max_tokens - _SPECIAL_TOKEN_RESERVE - self._prefix_tokens()

    def _prefix_tokens(self) -> int:
        return self.count(self.document_prefix) if self.document_prefix else 0

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encodings]


def _max_seq_length(model_dir: Path) -> int:
    import json

    for name in ("sentence_bert_config.json", "tokenizer_config.json", "config.json"):
        path = model_dir / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for key in ("max_seq_length", "model_max_length", "max_position_embeddings"):
            value = data.get(key)
            if isinstance(value, int) and 0 < value < 1_000_000:
                return value
    raise ValueError(f"cannot find the max sequence length of the model in {model_dir}")


@lru_cache(maxsize=4)
def load_token_counter(model: str) -> TokenCounter:
    """The token counter for a model name or path; cached, so loaded once per process."""
    model_dir = resolve_model_path(model)
    tokenizer_file = model_dir / "tokenizer.json"
    if tokenizer_file.exists():
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    else:  # models without a fast tokenizer file: let transformers build one
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir)).backend_tokenizer
    tokenizer.no_truncation()
    tokenizer.no_padding()
    from indexer_core.embedding.prompts import model_prompts

    return TokenCounter(
        tokenizer=tokenizer,
        max_tokens=_max_seq_length(model_dir),
        document_prefix=model_prompts(model).document,
    )
