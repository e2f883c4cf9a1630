"""Exact per-line token counts, computed far faster than tokenizing every line.

WordPiece tokens never cross whitespace, so a range of whole lines costs the sum of its
lines. For the BERT normaliser and pre-tokeniser, a printable-ASCII line splits into
alphanumeric runs and single punctuation characters, each punctuation character one token;
only the runs need the tokenizer, and code repeats its words, so a per-process word cache
makes most lines cost a regex and a few dict look-ups. Other lines are tokenized exactly.
"""

from __future__ import annotations

import re
import string
from itertools import accumulate, repeat

import numpy as np

from indexer_core.tokens import TokenCounter

_EXOTIC = re.compile(r"[^\t\n\r\x20-\x7e]")  # non-ASCII or control characters
_PIECE_NL = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]|\n")
_NEWLINE = 1 << 40  # marks a row break among the pieces
_WORD_B = re.compile(rb"[A-Za-z0-9]+")
_ALNUM = np.zeros(256, dtype=bool)
_ALNUM[[ord(c) for c in string.ascii_letters + string.digits]] = True
_PUNCT = np.zeros(256, dtype=bool)
_PUNCTUATION = [c for c in string.printable if c in string.punctuation]
_PUNCT[[ord(c) for c in _PUNCTUATION]] = True
_CACHE_LIMIT = 2_000_000

# id(tokenizer) -> (tokenizer, word cache); the tokenizer is kept so its id stays unique.
_WORD_CACHES: dict[int, tuple[object, dict[str, int]]] = {}


def _is_wordpiece_bert(counter: TokenCounter) -> bool:
    tok = counter.tokenizer
    return (
        type(tok.model).__name__ == "WordPiece"
        and type(tok.pre_tokenizer).__name__ == "BertPreTokenizer"
        and type(tok.normalizer).__name__ == "BertNormalizer"
    )


def _word_cache(counter: TokenCounter) -> dict[str, int]:
    entry = _WORD_CACHES.get(id(counter.tokenizer))
    if entry is None or entry[0] is not counter.tokenizer:
        entry = (counter.tokenizer, dict.fromkeys(_PUNCTUATION, 1))
        _WORD_CACHES[id(counter.tokenizer)] = entry
    cache = entry[1]
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
        cache.update(dict.fromkeys(_PUNCTUATION, 1))
    return cache


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
    if not _is_wordpiece_bert(counter):
        return [0, *accumulate(n + 1 for n in safe_count_many(counter, lines))]
    if text is None:
        text = "\n".join(lines)
    cache = _word_cache(counter)
    if text.isascii():
        prefix = _ascii_prefix(text.encode("ascii"), cache, counter)
    else:
        prefix = _piece_prefix(text, cache, counter)
    if _EXOTIC.search(text) is None:
        return prefix
    # Lines with non-ASCII or control characters are tokenized as they are.
    search = _EXOTIC.search
    exotic = [row for row, line in enumerate(lines) if search(line) is not None]
    costs = np.diff(np.asarray(prefix, dtype=np.int64))
    costs[exotic] = safe_count_many(counter, [lines[r] for r in exotic])
    return [0, *np.cumsum(costs).tolist()]


def _ascii_prefix(src: bytes, cache: dict[str, int], counter: TokenCounter) -> list[int]:
    """Row prefix sums for ASCII text, vectorised: punctuation bytes cost one token each,
    and each alphanumeric run costs its cached WordPiece count at its first byte."""
    arr = np.frombuffer(src, dtype=np.uint8)
    alnum = _ALNUM[arr]
    starts = np.flatnonzero(alnum & ~np.concatenate(([False], alnum[:-1])))
    words = _WORD_B.findall(src)
    missing = [w.decode("ascii") for w in set(words)] if words else []
    missing = [w for w in missing if w not in cache]
    if missing:
        cache.update(zip(missing, safe_count_many(counter, missing)))
    get = cache.__getitem__
    word_costs = np.fromiter(map(get, map(bytes.decode, words)), dtype=np.int64, count=len(words))
    per_byte = _PUNCT[arr].astype(np.int64)
    per_byte[starts] += word_costs
    cumulative = np.cumsum(per_byte)
    newlines = np.flatnonzero(arr == 10)
    total = int(cumulative[-1]) if len(cumulative) else 0
    return [0, *cumulative[newlines].tolist(), total]


def _piece_prefix(text: str, cache: dict[str, int], counter: TokenCounter) -> list[int]:
    """Row prefix sums from one regex pass; exotic rows are corrected by the caller."""
    # One regex pass over the whole text; newlines are kept as row separators.
    pieces = _PIECE_NL.findall(text)
    missing = set(pieces).difference(cache)
    missing.discard("\n")
    if missing:
        words = list(missing)
        cache.update(zip(words, safe_count_many(counter, words)))
    values = np.fromiter(
        map(cache.get, pieces, repeat(_NEWLINE)), dtype=np.int64, count=len(pieces)
    )
    newlines = np.flatnonzero(values == _NEWLINE)
    values[newlines] = 0
    cumulative = np.cumsum(values)
    total = int(cumulative[-1]) if len(cumulative) else 0
    return [0, *cumulative[newlines].tolist(), total]
