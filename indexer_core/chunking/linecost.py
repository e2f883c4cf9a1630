"""Exact per-line token counts, computed far faster than tokenizing every line.

WordPiece tokens never cross whitespace, so a range of whole lines costs the sum of its
lines. For the BERT normaliser and pre-tokeniser, a printable-ASCII line splits into
alphanumeric runs and single punctuation characters, each punctuation character one token;
only the runs need counting, against the WordPiece vocabulary (`wordpiece`), and code
repeats its words, so a per-process word cache makes a known word cost one dict look-up. Lines with
other characters are tokenized by the tokenizer itself. All of it works
on the UTF-8 bytes with numpy, so a file costs a few passes in C and a look-up per word.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from itertools import accumulate, repeat

import numpy as np

from indexer_core.chunking.tokens import TokenCounter
from indexer_core.chunking.wordpiece import WordPieceVocab

_EXOTIC = re.compile(r"[^\t\n\r\x20-\x7e]")  # non-ASCII or control characters
_WORDS_ONLY = bytes(c if chr(c).isascii() and chr(c).isalnum() else 32 for c in range(256))
_WORDS_LOWER = _WORDS_ONLY.lower()
_ALNUM = np.zeros(256, dtype=bool)
_ALNUM[[ord(c) for c in string.ascii_letters + string.digits]] = True
_PUNCT = np.zeros(256, dtype=bool)
_PUNCTUATION = [c for c in string.printable if c in string.punctuation]
_PUNCT[[ord(c) for c in _PUNCTUATION]] = True
_PUNCT_BYTES = "".join(_PUNCTUATION).encode("ascii")
_EXOTIC_BYTE = np.ones(256, dtype=bool)  # bytes of non-ASCII or control characters
_EXOTIC_BYTE[[9, 10, 13, *range(0x20, 0x7F)]] = False
_CACHE_LIMIT = 2_000_000


@dataclass
class _WordCosts:
    """Per-tokenizer caches of word costs, kept for the life of the process."""

    tokenizer: object  # kept so that its id stays unique while the entry lives
    vocab: WordPieceVocab | None  # set for WordPiece with the BERT normaliser and pre-tokeniser
    ascii_words: dict[bytes, int]  # alphanumeric run (as `words` gives it) -> tokens
    seed: dict[bytes, int]  # whole-word vocabulary entries: one token each
    separators: dict[str, bool] = field(default_factory=dict)  # `is_one_token_separator`

    @property
    def exact(self) -> bool:
        return self.vocab is not None

    def words(self, src: bytes) -> list[bytes]:
        """The alphanumeric runs of ASCII bytes as cache keys (lowercased when the
        normaliser lowercases, since a word then costs what its lowercase costs)."""
        # One C pass maps every other byte to a space (and lowercases), one more splits.
        return src.translate(_WORDS_LOWER if self.vocab.lowercase else _WORDS_ONLY).split()


_WORD_COSTS: dict[int, _WordCosts] = {}


def _word_costs(counter: TokenCounter) -> _WordCosts:
    entry = _WORD_COSTS.get(id(counter.tokenizer))
    if entry is None or entry.tokenizer is not counter.tokenizer:
        entry = _new_word_costs(counter)
        _WORD_COSTS[id(counter.tokenizer)] = entry
    if len(entry.ascii_words) > _CACHE_LIMIT:
        entry.ascii_words.clear()
        entry.ascii_words.update(entry.seed)
    return entry


def _new_word_costs(counter: TokenCounter) -> _WordCosts:
    vocab = WordPieceVocab.from_tokenizer(counter.tokenizer)
    # A word that is itself a vocabulary entry is matched whole by WordPiece: one token.
    seed = dict.fromkeys(vocab.first, 1) if vocab is not None else {}
    return _WordCosts(counter.tokenizer, vocab, dict(seed), seed)


def is_one_token_separator(counter: TokenCounter, mark: str) -> bool:
    """Whether `mark` costs one token and separates the words around it for this tokenizer,
    as a space would: then a text's count is its count with each `mark` as a space, plus one
    per `mark`. Asked of the tokenizer once, kept with its word costs."""
    costs = _word_costs(counter)
    known = costs.separators.get(mark)
    if known is None:
        probes = (f"a{mark}b", "a b", mark, f"{mark}x > y", " x > y")
        between, spaced, alone, leading, plain = (safe_count(counter, p) for p in probes)
        known = alone == 1 and between == spaced + 1 and leading == plain + 1
        costs.separators[mark] = known
    return known


def safe_count_many(counter: TokenCounter, texts: list[str]) -> list[int]:
    """count_many that survives text the tokenizer rejects (lone surrogates)."""
    try:
        return counter.count_many(texts)
    except (UnicodeError, ValueError, TypeError):  # strings it cannot convert
        fixed = [t.encode("utf-8", "replace").decode("utf-8", "replace") for t in texts]
        return counter.count_many(fixed)


def safe_count(counter: TokenCounter, text: str) -> int:
    return safe_count_many(counter, [text])[0]


def prefix_costs(lines: list[str], counter: TokenCounter, text: str | None = None) -> list[int]:
    """Prefix sums of the lines' token counts: entry r is the cost of rows 0..r-1.

    Exact for WordPiece/BERT tokenizers. For other tokenizers each line is counted alone
    plus one token for the line break, which is the best an additive estimate can do.
    """
    costs = _word_costs(counter)
    if not costs.exact:
        return [0, *accumulate(n + 1 for n in safe_count_many(counter, lines))]
    if text is None:
        text = "\n".join(lines)
    # UTF-8 never uses the newline byte inside a character, so rows are the same in bytes.
    src = text.encode("utf-8", "surrogatepass")
    arr = np.frombuffer(src, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    prefix = _byte_prefix(src, arr, newlines, costs)
    exotic_bytes = np.flatnonzero(_EXOTIC_BYTE[arr])
    if len(exotic_bytes):
        # Rows with non-ASCII or control characters are tokenized as they are.
        rows = np.unique(np.searchsorted(newlines, exotic_bytes)).tolist()
        row_costs = np.diff(prefix)
        row_costs[rows] = safe_count_many(counter, [lines[r] for r in rows])
        return [0, *np.cumsum(row_costs).tolist()]
    return prefix.tolist()


def text_tokens(counter: TokenCounter, text: str) -> int:
    """Exact token count of a short text (a context header) from the word caches, with no
    tokenizer call; other tokenizers or exotic text are tokenized."""
    costs = _word_costs(counter)
    if not costs.exact or not text.isascii() or _EXOTIC.search(text) is not None:
        return safe_count(counter, text)
    src = text.encode("ascii")
    words = costs.words(src)
    cache, count = costs.ascii_words, costs.vocab.count
    total = len(src) - len(src.translate(None, _PUNCT_BYTES))  # one token per punctuation
    for word in words:
        n = cache.get(word)
        if n is None:
            n = cache[word] = count(word)
        total += n
    return total


def _word_token_counts(src: bytes, costs: _WordCosts) -> np.ndarray:
    """The token count of each alphanumeric run of ASCII bytes, in order."""
    words = costs.words(src)
    cache = costs.ascii_words
    counts = np.fromiter(map(cache.get, words, repeat(-1)), dtype=np.int64, count=len(words))
    unknown = np.flatnonzero(counts < 0)
    if len(unknown):  # words never seen in this process: count them against the vocabulary
        count = costs.vocab.count
        for i in unknown.tolist():
            word = words[i]
            n = cache.get(word)
            if n is None:
                n = cache[word] = count(word)
            counts[i] = n
    return counts


def _byte_prefix(
    src: bytes, arr: np.ndarray, newlines: np.ndarray, costs: _WordCosts
) -> np.ndarray:
    """Row prefix sums (rows + 1 entries), vectorised: punctuation bytes cost one token
    each, and each alphanumeric run costs its cached WordPiece count at its first byte.
    Bytes of other characters cost nothing here; their rows are recounted by the caller."""
    alnum = _ALNUM[arr]
    starts = np.flatnonzero(alnum & ~np.concatenate(([False], alnum[:-1])))
    per_byte = _PUNCT[arr].astype(np.int64)
    per_byte[starts] += _word_token_counts(src, costs)
    cumulative = np.cumsum(per_byte)
    total = cumulative[-1:] if len(cumulative) else np.zeros(1, dtype=np.int64)
    return np.concatenate(([0], cumulative[newlines], total))
