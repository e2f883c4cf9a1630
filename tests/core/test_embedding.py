"""The pipelined encode (tokenizer threads ahead of the model) against the model's own encode.

On CUDA the embedder tokenizes on worker threads while the device runs earlier batches. The
vectors must be the model's own, in the caller's order, whatever the batch boundaries; this
checks that on the CPU with the real packaged model, where CI runs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer_core.embedding.fast_features import fast_features
from indexer_core.embedding.model import Embedder, tokenizer_threads


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
    assert tokenizer_threads("cuda", under_gil=True) == 1  # the segment cache holds the GIL
    assert tokenizer_threads("cuda", "3", under_gil=True) == 3  # an explicit count wins


class _OutOfMemoryOnForward:
    """A model whose batched forward pass runs out of device memory; its own encode works."""

    def __init__(self, real) -> None:
        self.real = real
        self.forward_calls = 0

    def preprocess(self, texts):
        return self.real.preprocess(texts)

    def get_sentence_embedding_dimension(self) -> int:
        return self.real.get_sentence_embedding_dimension()

    def __call__(self, features):
        self.forward_calls += 1
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def encode(self, texts, **kwargs):
        return self.real.encode(texts, **kwargs)


def test_pipelined_encode_out_of_memory_falls_back_to_the_models_own(embedder: Embedder) -> None:
    model = _OutOfMemoryOnForward(embedder.model)
    pipelined = Embedder(embedder.model_name, model, "cpu", batch_size=8, tokenizer_threads=2)
    texts = _texts()[:20]
    got = pipelined.encode(texts)
    assert model.forward_calls == 1
    np.testing.assert_allclose(got, embedder.encode(texts), atol=1e-5)


def test_pipelined_encode_raises_other_errors(embedder: Embedder) -> None:
    class Broken(_OutOfMemoryOnForward):
        def __call__(self, features):
            raise RuntimeError("device-side assert triggered")

    pipelined = Embedder(
        embedder.model_name, Broken(embedder.model), "cpu", batch_size=8, tokenizer_threads=2
    )
    with pytest.raises(RuntimeError, match="device-side assert"):
        pipelined.encode(_texts()[:20])


def test_length_batches_fill_short_texts_up_to_the_longest_batchs_memory() -> None:
    from indexer_core.embedding.model import length_batches

    texts = sorted((("x" * n) for n in (1000, 900, 400, 100, 100, 50) * 20), key=len, reverse=True)
    batches = length_batches(texts, 8)
    assert [t for b in batches for t in b] == texts  # every text once, in order
    budget = 8 * 1000
    assert all(len(b) * len(b[0]) <= budget or len(b) == 8 for b in batches)
    assert all(len(b) <= 64 for b in batches) and len(batches[0]) == 8
    assert max(len(b) for b in batches) > 8  # short texts go in bigger batches
    assert length_batches([], 8) == []


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=600), max_size=300),
    batch_size=st.integers(min_value=1, max_value=64),
)
def test_length_batch_sizes_cover_every_text_within_the_budget(
    lengths: list[int], batch_size: int
) -> None:
    from indexer_core.embedding.batching import length_batch_sizes

    longest_first = sorted(lengths, reverse=True)
    sizes = length_batch_sizes(longest_first, batch_size)
    assert sum(sizes) == len(lengths) and all(size >= 1 for size in sizes)
    budget = batch_size * max(1, longest_first[0]) if lengths else 0
    start = 0
    for size in sizes:
        padded = size * max(1, longest_first[start])
        last = start + size == len(lengths)
        assert size <= 8 * batch_size
        assert padded <= budget or size <= batch_size  # over budget only at the floor
        assert size >= batch_size or last  # small batches only where the texts run out
        start += size


def test_fast_features_are_the_models_own(embedder: Embedder) -> None:
    """The pipelined path's features, built from the Rust tokenizer, equal the model's own
    `preprocess` on texts it never probed: code, prose, whitespace, one over the limit."""
    fast = fast_features(embedder.model)
    assert fast is not None
    assert fast.ids is not None  # a BERT tokenizer: ids from the segment cache
    texts = _texts()
    own = embedder.model.preprocess(texts)
    for way in (fast, replace(fast, ids=None)):  # the segment cache, then the Rust tokenizer
        ours = way(texts)
        for name in ("input_ids", "token_type_ids", "attention_mask"):
            assert ours[name].dtype == own[name].dtype
            assert ours[name].equal(own[name]), name
        assert ours["input_ids"].shape[1] == embedder.max_tokens  # the long text was truncated


def test_pipelined_encode_with_fast_features_equals_the_models_own(embedder: Embedder) -> None:
    pipelined = Embedder(
        embedder.model_name,
        embedder.model,
        "cpu",
        batch_size=8,
        tokenizer_threads=3,
        features=fast_features(embedder.model),
    )
    assert pipelined.features is not None
    texts = _texts()
    np.testing.assert_allclose(pipelined.encode(texts), embedder.encode(texts), atol=1e-5)


def test_fast_features_refused_where_they_would_differ(embedder: Embedder) -> None:
    """A tokenizer that pads on the left makes other features than ours: the model keeps its
    own preprocess instead of being fed different inputs."""
    tokenizer = embedder.model.tokenizer
    side = tokenizer.padding_side
    try:
        tokenizer.padding_side = "left"
        assert fast_features(embedder.model) is None
    finally:
        tokenizer.padding_side = side
    assert fast_features(embedder.model) is not None


def test_fast_features_for_a_model_without_a_rust_tokenizer() -> None:
    class NoTokenizer:
        max_seq_length = 128

    assert fast_features(NoTokenizer()) is None
