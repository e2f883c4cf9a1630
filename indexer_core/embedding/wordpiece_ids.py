"""A BERT-style model's token ids for whole texts, built segment by segment from a cache.

On a fast device the host's tokenizing bounds the encoder: the Rust tokenizer's
`encode_batch_fast` gives about 430k tokens a second per core on source code here, below the
700k an H100 should reach with MiniLM; on this 2-core machine a 50 MB tree's texts took
28-35 s of CPU to tokenize, where a whole run beside a simulated H100 took 86 s. Code
repeats its words, and the BERT normaliser and pre-tokeniser work word by word: a text
splits at ASCII whitespace and punctuation into segments that tokenize alike wherever they
stand. So a text's ids are the ids of its segments, one dict look-up each once a segment has
been seen: 3-5x the Rust tokenizer's tokens per core on real code, from an empty cache
(`bench/reports/host_tokenize.md`).

Exactly the model's own ids, or not used:
- only a WordPiece model with the BERT normaliser (cleaning text) and pre-tokeniser, whose
  template puts fixed special tokens around the text, all of one type id, and whose
  truncation keeps the head, qualifies (`from_tokenizer`);
- ASCII control characters are dropped first, as the normaliser drops them, so the words
  they split join up again; alphanumeric ASCII segments go through the vocabulary
  (`WordPieceVocab.ids`), a punctuation character is one segment, and a segment with any
  other character (accents, CJK, other scripts' spaces and marks) is tokenized by the
  tokenizer itself, once, then cached;
- a text that contains one of the tokenizer's added tokens (`[SEP]`, say), which the
  tokenizer matches before normalising, is tokenized whole by the tokenizer;
- and when loading, `PROBE_TEXTS` are tokenized both ways: any difference, and the fast
  path is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from indexer_core.chunking.wordpiece import WordPieceVocab

# Texts that show where the fast path would part from the tokenizer: empty, whitespace at
# either end, control characters, accents and scripts the normaliser rewrites, emoji, code,
# an added token in the text, a word over the per-word limit, and one far over the model's
# token limit (truncation).
PROBE_TEXTS = (
    "",
    "x",
    "  leading and trailing spaces  ",
    "\tdef parse(header: str) -> dict:\n    return dict(h.split(':') for h in header)\n\n",
    "Déjà vu: ÜNÏCÖDÉ 🙂 名前 ﬁle Ⅻ",
    "class Request { constructor(url) { this.url = url; } }",
    "zero\u200bwidth\x00nul\x1fcontrol\x0bjoined\x7fend\r\nCRLF\u00a0nbsp\u3000ideographic",
    "e\u0301 combining, İstanbul ǅ ß ﬀ ΣΑΣ",
    "an [SEP] and [UNK] and [mask] in the text",
    "HTTPServer._handle_one_request(self) -> None: ## x ##y #z",
    "Supercalifragilisticexpialidocious" * 4,
    "token " * 3000,
)
# Segments kept before the cache starts afresh: about 150 bytes each (the text, a tuple of
# ids, the dict entry), so at most ~75 MB; a 50 MB tree of Python holds about 100k.
_CACHE_LIMIT = 500_000
# After the control characters are gone: runs of anything but ASCII whitespace and
# punctuation (the pre-tokeniser's boundaries), and each punctuation character alone.
_SEGMENT = re.compile(r"[^\t\n\r !-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DROP_ASCII_CONTROL = dict.fromkeys([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


class _SegmentIds(dict):
    """segment -> its ids, computed on first sight (`__missing__`)."""

    def __init__(self, vocab: WordPieceVocab, tokenizer: Any) -> None:
        super().__init__()
        self.vocab = vocab
        self.tokenizer = tokenizer  # no special tokens, no truncation

    def __missing__(self, segment: str) -> tuple[int, ...]:
        if segment.isascii():
            word = segment.encode("ascii")
            ids = self.vocab.ids(word.lower() if self.vocab.lowercase else word)
        else:
            ids = tuple(self.tokenizer.encode(segment, add_special_tokens=False).ids)
        self[segment] = ids
        return ids


@dataclass
class WordPieceIds:
    """The token ids a tokenizer gives each text, special tokens in and cut at `max_tokens`
    (see the module docstring). Safe to share between threads: a segment two threads miss
    at once is computed twice, alike."""

    tokenizer: Any  # tokenizers.Tokenizer: the model's, truncating at `max_tokens`
    max_tokens: int
    prefix: tuple[int, ...]  # special tokens before the text ([CLS])
    suffix: tuple[int, ...]  # and after it ([SEP])
    type_id: int  # of every token
    added: re.Pattern[str] | None  # the added tokens' texts, any case
    segments: _SegmentIds = field(repr=False)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, max_tokens: int) -> WordPieceIds | None:
        """The fast path for `tokenizer` (truncating at `max_tokens`, no padding: what
        reaches the device), or None where it would not give the same ids."""
        from tokenizers import Tokenizer

        vocab = WordPieceVocab.from_tokenizer(tokenizer)
        config = json.loads(tokenizer.to_str())
        normalizer = config.get("normalizer") or {}
        truncation = config.get("truncation") or {}
        if (
            vocab is None
            or not normalizer.get("clean_text", True)
            or truncation.get("max_length") != max_tokens
            or truncation.get("direction", "Right") != "Right"
            or truncation.get("stride", 0) != 0
            or config.get("padding") is not None
        ):
            return None
        plain = Tokenizer.from_str(tokenizer.to_str())
        plain.no_truncation()
        framed = tokenizer.encode("a")
        body = plain.encode("a", add_special_tokens=False).ids
        ids, at = list(framed.ids), len(framed.ids)
        for start in range(len(ids) - len(body) + 1):
            if ids[start : start + len(body)] == body:
                at = start
                break
        if at == len(ids) or len(set(framed.type_ids)) != 1:
            return None
        added = [token["content"] for token in config.get("added_tokens") or ()]
        fast = cls(
            tokenizer=tokenizer,
            max_tokens=max_tokens,
            prefix=tuple(ids[:at]),
            suffix=tuple(ids[at + len(body) :]),
            type_id=framed.type_ids[0],
            added=re.compile("|".join(map(re.escape, added)), re.IGNORECASE) if added else None,
            segments=_SegmentIds(vocab, plain),
        )
        own = [e.ids for e in tokenizer.encode_batch_fast(list(PROBE_TEXTS))]
        return fast if fast.encode_batch(list(PROBE_TEXTS)) == own else None

    def encode(self, text: str) -> list[int]:
        """`text`'s ids, as the tokenizer's `encode(text).ids` gives them."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Each text's ids, as the tokenizer's `encode_batch_fast(texts)` gives them."""
        segments = self.segments
        if len(segments) > _CACHE_LIMIT:
            segments.clear()
        limit = self.max_tokens - len(self.prefix) - len(self.suffix)
        prefix, suffix, added = self.prefix, self.suffix, self.added
        out: list[list[int]] = []
        whole: list[int] = []  # texts the tokenizer takes itself
        for text in texts:
            if added is not None and added.search(text):
                whole.append(len(out))
                out.append([])
                continue
            if _ASCII_CONTROL.search(text):
                text = text.translate(_DROP_ASCII_CONTROL)
            body = list(chain.from_iterable(map(segments.__getitem__, _SEGMENT.findall(text))))
            if len(body) > limit:
                del body[limit:]
            out.append([*prefix, *body, *suffix])
        if whole:
            encodings = self.tokenizer.encode_batch_fast([texts[i] for i in whole])
            for i, encoding in zip(whole, encodings):
                out[i] = list(encoding.ids)
        return out


def token_ids(
    texts: list[str], tokenizer: Any, ids: WordPieceIds | None
) -> tuple[list[list[int]], int | list[list[int]]]:
    """Each text's ids (special tokens in, cut at the tokenizer's limit) and their type ids:
    from the segment cache `ids` where there is one, with the one type id of all; else from
    the tokenizer's `encode_batch_fast`, with each text's own."""
    if ids is not None:
        return ids.encode_batch(texts), ids.type_id
    encodings = tokenizer.encode_batch_fast(texts)
    return [e.ids for e in encodings], [e.type_ids for e in encodings]
