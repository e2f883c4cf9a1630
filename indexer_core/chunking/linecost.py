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

from indexer_core.tokens import TokenCounter

_EXOTIC = re.compile(r"[^\t\n\r\x20-\x7e]")  # non-ASCII or control characters
_WORD = re.compile(r"[A-Za-z0-9]+")
_PIECE = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")
_PUNCTUATION = [c for c in string.printable if c in string.punctuation]
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


def line_costs(lines: list[str], counter: TokenCounter, text: str | None = None) -> list[int]:
    """Token count of each line, exact for WordPiece/BERT tokenizers.

    For other tokenizers each line is counted alone plus one token for the line break,
    which is the best an additive estimate can do.
    """
    if not _is_wordpiece_bert(counter):
        return [n + 1 for n in safe_count_many(counter, lines)]
    if text is None:
        text = "\n".join(lines)
    cache = _word_cache(counter)
    missing = list(set(_WORD.findall(text)).difference(cache))
    if missing:
        cache.update(zip(missing, counter.count_many(missing)))
    get = cache.__getitem__
    findall = _PIECE.findall
    if _EXOTIC.search(text) is None:
        return [sum(map(get, findall(line))) if line else 0 for line in lines]
    costs: list[int] = []
    exotic_rows: list[int] = []
    search = _EXOTIC.search
    for row, line in enumerate(lines):
        if search(line) is None:
            costs.append(sum(map(get, findall(line))) if line else 0)
        else:
            costs.append(0)
            exotic_rows.append(row)
    exact = safe_count_many(counter, [lines[r] for r in exotic_rows])
    for row, n in zip(exotic_rows, exact):
        costs[row] = n
    return costs
