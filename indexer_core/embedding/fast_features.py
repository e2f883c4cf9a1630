"""The model's own input features for a batch of texts, built straight from its Rust tokenizer.

On a GPU, tokenizing is the encoder's host-side bottleneck: a forward pass of a model as small
as MiniLM takes less time than preparing its batch. sentence-transformers' `preprocess` goes
through the transformers tokenizer, which re-applies its truncation and padding settings on
every call, computes character offsets nobody reads and pads row by row: about 295k tokens a
second per core here, against 538k for the Rust tokenizer's `encode_batch_fast` with
truncation set once and padding into numpy (`python -m bench.host_tokenize`). For BERT-style
tokenizers the ids come from `wordpiece_ids` (a segment cache) at 3-5x that again.

The features must be the model's own, or the vectors would not be: `fast_features` builds
them for probe texts both ways when the model loads and keeps the fast way only where every
feature is identical; any other model keeps `preprocess`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from indexer_core.embedding.wordpiece_ids import PROBE_TEXTS, WordPieceIds, token_ids

FEATURES = ("input_ids", "token_type_ids", "attention_mask")


@dataclass
class FastFeatures:
    """A batch's `input_ids`, `token_type_ids` and `attention_mask`, right-padded to its
    longest text, as torch tensors (what the model's forward pass takes). Safe to call from
    several threads: the tokenizer is a private copy whose settings never change after load,
    and `encode_batch_fast` releases the GIL."""

    tokenizer: Any  # tokenizers.Tokenizer: truncation at the model's limit, no padding
    pad_id: int
    pad_type_id: int
    ids: WordPieceIds | None = None  # the same ids from a segment cache, where it qualifies

    def arrays(self, texts: list[str]) -> dict[str, np.ndarray]:
        rows, type_ids = token_ids(texts, self.tokenizer, self.ids)
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        width = int(lengths.max(initial=0))
        mask = np.arange(width) < lengths[:, None]  # each row's real tokens, left-aligned
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        ids[mask] = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        types = np.full((len(rows), width), self.pad_type_id, dtype=np.int64)
        if isinstance(type_ids, int):
            types[mask] = type_ids
        else:
            types[mask] = np.fromiter(chain.from_iterable(type_ids), dtype=np.int64)
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask.astype(np.int64)}

    def __call__(self, texts: list[str]) -> dict[str, Any]:
        import torch

        return {name: torch.from_numpy(array) for name, array in self.arrays(texts).items()}


def device_tokenizer(tokenizer: Any, max_tokens: int) -> Any:
    """A copy of a Rust `tokenizers.Tokenizer` that gives what reaches the device: each text
    cut at `max_tokens`, no padding (batches pad to their own longest). A copy, so the
    original's settings (a token counter's, say) stay as they were."""
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.enable_truncation(max_length=max_tokens)
    return copy


def fast_features(model: Any) -> FastFeatures | None:
    """The fast path for a sentence-transformers `model`, or None where it would differ from
    the model's own `preprocess` (checked on `PROBE_TEXTS`: padding on the left, say, or
    inputs other than the three features) or cannot be built (no Rust tokenizer)."""
    hf_tokenizer = getattr(model, "tokenizer", None)
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    max_tokens = getattr(model, "max_seq_length", None)
    if backend is None or not isinstance(max_tokens, int) or max_tokens <= 0:
        return None
    try:
        tokenizer = device_tokenizer(backend, max_tokens)
        fast = FastFeatures(
            tokenizer=tokenizer,
            pad_id=int(hf_tokenizer.pad_token_id or 0),
            pad_type_id=int(getattr(hf_tokenizer, "pad_token_type_id", 0) or 0),
            ids=WordPieceIds.from_tokenizer(tokenizer, max_tokens),
        )
        return fast if _same_as_the_models_own(model, fast) else None
    except Exception:  # noqa: BLE001 - any surprise means the model's own preprocess, not a crash
        return None


def _same_as_the_models_own(model: Any, fast: FastFeatures) -> bool:
    texts = list(PROBE_TEXTS)
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    own = preprocess(texts)
    inputs = {k for k, v in own.items() if hasattr(v, "shape")}
    if inputs != set(FEATURES):
        return False
    ours = fast.arrays(texts)
    return all(np.array_equal(own[name].cpu().numpy(), ours[name]) for name in FEATURES)
