"""The pipelined encode (tokenizer threads ahead of the model) against the model's own encode.

On CUDA the embedder tokenizes on worker threads while the device runs earlier batches. The
vectors must be the model's own, in the caller's order, whatever the batch boundaries; this
checks that on the CPU with the real packaged model, where CI runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from indexer_core.embedding import Embedder, tokenizer_threads


def _texts() -> list[str]:
    words = [
        "parse",
        "the",
        "header",
        "of",
        "a",
        "request",
        "and",
        "return",
        "its",
        "fields",
        "as",
        "a",
        "mapping",
    ]
    texts = [" ".join(words[: 1 + i % len(words)]) * (1 + i % 7) for i in range(70)]
    # Empty, one character, non-ASCII, and one far over the model's token limit.
    return [*texts, "", "x", "déjà vu: ünïcödé 🙂 名前", "token " * 3000]


@pytest.mark.parametrize("threads", [1, 3])
def test_pipelined_encode_equals_the_models_own(embedder: Embedder, threads: int) -> None:
    texts = _texts()
    expected = embedder.model.encode(
        texts, batch_size=16, convert_to_numpy=True, normalize_embeddings=True
    )
    pipelined = Embedder(
        embedder.model_name, embedder.model, "cpu", batch_size=8, tokenizer_threads=threads
    )
    got = pipelined.encode(texts)
    assert got.shape == (len(texts), embedder.dim)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)  # row by row: the caller's order


def test_pipelined_encode_of_one_and_none(embedder: Embedder) -> None:
    pipelined = Embedder(
        embedder.model_name, embedder.model, "cpu", batch_size=8, tokenizer_threads=2
    )
    assert pipelined.encode([]).shape == (0, embedder.dim)
    one = pipelined.encode(["return the sum"])
    np.testing.assert_allclose(one, embedder.encode(["return the sum"]), atol=1e-6)


def test_tokenizer_threads_only_on_cuda_by_default() -> None:
    assert tokenizer_threads("cpu") == 0
    assert tokenizer_threads("mps") == 0
    assert 1 <= tokenizer_threads("cuda") <= 8
    assert tokenizer_threads("cuda:1", "0") == 0
    assert tokenizer_threads("cpu", "4") == 4
