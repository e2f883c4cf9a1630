"""Token ids from the segment cache (`wordpiece_ids`) against the packaged model's own Rust
tokenizer: equal on real source and prose, on random text built to break it, and refused
for tokenizers it does not model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from indexer_core.chunking.tokens import load_token_counter
from indexer_core.embedding.fast_features import device_tokenizer
from indexer_core.embedding.wordpiece_ids import WordPieceIds

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def device() -> Tokenizer:
    counter = load_token_counter("all-MiniLM-L6-v2")
    return device_tokenizer(counter.tokenizer, counter.max_tokens)


@pytest.fixture(scope="module")
def fast(device: Tokenizer) -> WordPieceIds:
    ids = WordPieceIds.from_tokenizer(device, 256)
    assert ids is not None
    return ids


def _own(device: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in device.encode_batch_fast(texts)]


def test_real_files_tokenize_as_the_tokenizer_does(device: Tokenizer, fast: WordPieceIds) -> None:
    """Every 12 lines of this project's Python, Markdown and shell files, plus the
    non-ASCII text of a site-package's sources: the same ids, cut at 256 where long."""
    files = sorted(PROJECT.glob("**/*.py")) + sorted(PROJECT.glob("**/*.md"))
    files = [f for f in files if ".venv" not in f.parts][:300]
    texts = []
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        texts += ["".join(lines[i : i + 12]) for i in range(0, len(lines), 12)]
    texts += [text.upper() for text in texts[:200]]  # the normaliser lowercases
    assert len(texts) > 2000
    assert fast.encode_batch(texts) == _own(device, texts)
    assert fast.encode_batch(texts) == _own(device, texts)  # from a warm cache too
    assert any(not text.isascii() for text in texts)
    assert max(map(len, fast.encode_batch(texts))) == 256


_ALPHABET = st.sampled_from(
    [chr(c) for c in range(128)]
    + list("éÉüßİıǅﬁⅫ名前🙂\u0301\u200b\u00a0\u3000\u2028\ufffd\u0085–—“”…")
    + ["[SEP]", "[unk]", "[CLS", "##", "ing", "un", "Http", "x" * 101]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_ALPHABET, max_size=120).map("".join), min_size=1, max_size=8))
def test_random_text_tokenizes_as_the_tokenizer_does(
    device: Tokenizer, fast: WordPieceIds, texts: list[str]
) -> None:
    """Control characters that join words, accents, other scripts' spaces and marks, added
    tokens in the text, words over the per-word limit: nothing parts the two."""
    assert fast.encode_batch(texts) == _own(device, texts)


def test_an_added_token_in_the_text_is_matched_as_the_tokenizer_matches_it(
    device: Tokenizer, fast: WordPieceIds
) -> None:
    text = "split at [SEP] here"
    assert fast.encode(text) == device.encode(text).ids
    assert device.token_to_id("[SEP]") in fast.encode(text)[1:-1]


def test_refused_for_tokenizers_it_does_not_model(device: Tokenizer) -> None:
    assert WordPieceIds.from_tokenizer(device, 128) is None  # truncation is at 256, not 128
    untruncated = Tokenizer.from_str(device.to_str())
    untruncated.no_truncation()
    assert WordPieceIds.from_tokenizer(untruncated, 256) is None
    vocab = {"[UNK]": 0, "a": 1, "##b": 2}
    other = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    other.normalizer = normalizers.Lowercase()  # not the BERT normaliser
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    other.enable_truncation(256)
    assert WordPieceIds.from_tokenizer(other, 256) is None
