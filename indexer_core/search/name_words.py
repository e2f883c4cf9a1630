"""Ranking chunks by the words of their names: `parse header` finds `parse_header`.

A natural-language query shares words with the identifiers that answer it, split by case
and separators and stemmed. `NameWords` holds, per catalogue slot, the stems of a chunk's
name and scope, with IDF weights over all names, and ranks slots by the weight of the
query's stems they hold. It follows table changes slot by slot (`updated`), exactly as a
fresh build would rank.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from indexer_core.search.names import NameIndex, SlotChange, word_parts

_STOP = frozenset(
    {
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "is",
        "if",
        "and",
        "or",
        "for",
        "from",
        "with",
        "by",
        "on",
        "at",
        "as",
        "be",
        "it",
        "its",
        "this",
        "that",
        "are",
        "was",
        "return",
        "returns",
        "given",
        "into",
        "not",
        "no",
        "all",
        "any",
        "new",
        "get",
        "set",
        "one",
        "two",
    }
)


def stem(word: str) -> str:
    """A crude English stem so `reads`, `reading` and `read` meet (names are short)."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def query_words(query: str) -> set[str]:
    """Stemmed content words of a sentence, split like identifiers (`isUnspecified` too)."""
    return {stem(w) for w in word_parts(query) if len(w) >= 3 and w not in _STOP}


def tie_key(chunk_id: str) -> int:
    """A 64-bit number standing for a chunk id in tie-breaks: the id's first 16 hex digits
    (ids are hex hashes, `hashing.stable_id`), else a hash of it."""
    try:
        if len(chunk_id) >= 16:
            return int(chunk_id[:16], 16)
    except ValueError:
        pass
    return int.from_bytes(
        hashlib.blake2b(chunk_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


_NO_SLOTS = np.zeros(0, dtype=np.int64)


@dataclass
class NameWords:
    """Sentence-to-name matching: IDF-weighted share of a chunk's name words a query mentions.

    Catches `Returns true if the address is unspecified` -> `isUnspecified` by the name alone,
    where BM25 (over `search_text`) weighs those words among the whole chunk's. Postings are
    numpy arrays, so a query costs a few vector additions however common its words are.

    Built by the same `updated` step that follows a change of the table, so an updated index
    holds exactly the numbers a fresh build would: IDF over the live rows, and each name's
    IDF mass summed (`np.bincount`) over its stems in sorted order.
    """

    rows: list[dict | None]  # the NameIndex's rows, by slot
    postings: dict[str, np.ndarray]  # stem -> slots whose name has it
    scope_postings: dict[str, np.ndarray]  # stem -> slots whose enclosing scopes have it
    idf: dict[str, float]
    name_mass: np.ndarray  # per slot: the IDF sum of its name's stems
    scope_size: np.ndarray  # per slot: distinct scope stems (at least 1)
    tie: np.ndarray  # per slot: `tie_key` of its chunk id (equal scores rank by it)
    vocab: dict[str, int] = field(default_factory=dict)  # stem -> column of pair_stem
    pair_slot: np.ndarray = field(default_factory=lambda: _NO_SLOTS)  # (slot, stem) pairs of
    pair_stem: np.ndarray = field(default_factory=lambda: _NO_SLOTS)  # every live name

    @classmethod
    def build(cls, index: NameIndex) -> NameWords:
        empty = cls([], {}, {}, {}, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.uint64))
        return empty.updated(index, SlotChange({}, range(len(index.rows))))

    def updated(self, index: NameIndex, change: SlotChange) -> NameWords:
        """The words of `index`, which `change` made from the index these words were of.

        This object is left as it was; postings of stems the change touches are new arrays.
        """
        gone: dict[str, list[int]] = defaultdict(list)
        scope_gone: dict[str, list[int]] = defaultdict(list)
        for i, row in change.dropped.items():
            for word in row["_stems"]:
                gone[word].append(i)
            for word in row["_scope_stems"]:
                scope_gone[word].append(i)
        new: dict[str, list[int]] = defaultdict(list)
        scope_new: dict[str, list[int]] = defaultdict(list)
        vocab = dict(self.vocab)
        pair_slot: list[int] = []
        pair_stem: list[int] = []
        added = [index.rows[i] for i in change.added]
        for i, row in zip(change.added, added):
            row["_stems"] = _stems(row["_parts"])
            row["_scope_stems"] = _stems(row["_scope_parts"])
            for word in row["_stems"]:
                new[word].append(i)
                pair_slot.append(i)
                pair_stem.append(vocab.setdefault(word, len(vocab)))
            for word in row["_scope_stems"]:
                scope_new[word].append(i)
        postings = _update_postings(self.postings, gone, new)
        scope_postings = _update_postings(self.scope_postings, scope_gone, scope_new)

        keep = slice(None)
        if change.dropped:
            keep = ~np.isin(self.pair_slot, np.fromiter(change.dropped, dtype=np.int64))
        all_slots = np.concatenate([self.pair_slot[keep], np.asarray(pair_slot, dtype=np.int64)])
        all_stems = np.concatenate([self.pair_stem[keep], np.asarray(pair_stem, dtype=np.int64)])
        n = max(1, index.live)
        idf = {w: math.log(1 + n / len(rows)) for w, rows in postings.items()}
        idf_of = np.zeros(len(vocab), dtype=np.float64)
        if idf:
            idf_of[np.fromiter((vocab[w] for w in idf), dtype=np.int64, count=len(idf))] = list(
                idf.values()
            )
        # Sequential sums in pair order: each name's stems in sorted order, whatever its slot.
        name_mass = np.bincount(all_slots, weights=idf_of[all_stems], minlength=len(index.rows))
        name_mass[name_mass == 0] = 1.0
        scope_size = np.concatenate(
            [
                self.scope_size,
                np.fromiter((max(1, len(r["_scope_stems"])) for r in added), dtype=np.float64),
            ]
        )
        tie = np.concatenate(
            [
                self.tie,
                np.fromiter((tie_key(r["chunk_id"]) for r in added), dtype=np.uint64),
            ]
        )
        return NameWords(
            index.rows,
            postings,
            scope_postings,
            idf,
            name_mass,
            scope_size,
            tie,
            vocab,
            all_slots,
            all_stems,
        )

    def rank(self, query: str, accept=None, limit: int = 50) -> list[tuple[int, float]]:
        """Slots best first with a 0-1 score (share of the name's IDF mass matched)."""
        words = [w for w in query_words(query) if w in self.postings]
        if not words:
            return []
        hit = np.zeros(len(self.name_mass), dtype=np.float64)
        for word in words:
            hit[self.postings[word]] += self.idf[word]
        candidates = np.flatnonzero(hit)
        scope = np.zeros(len(self.name_mass), dtype=np.float64)
        for word in query_words(query):
            rows = self.scope_postings.get(word)
            if rows is not None:
                scope[rows] += 1.0
        scores = np.minimum(
            1.0,
            hit[candidates] / self.name_mass[candidates] * 0.8
            + 0.25 * scope[candidates] / self.scope_size[candidates],
        )
        tie = self.tie[candidates]
        order = np.lexsort((tie, -scores))
        same = (np.diff(scores[order]) == 0) & (np.diff(tie[order]) == 0)
        if same.any():  # two ids with one tie key (not seen in practice): order by the ids
            rows = self.rows
            order = sorted(order, key=lambda j: (-scores[j], rows[candidates[j]]["chunk_id"]))
        ranked: list[tuple[int, float]] = []
        for j in order:
            i = int(candidates[j])
            if accept is None or accept(i):
                ranked.append((i, float(scores[j])))
                if len(ranked) >= limit:
                    break
        return ranked


def _stems(parts: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted({stem(p) for p in parts}))


def _update_postings(
    postings: dict[str, np.ndarray], gone: dict[str, list[int]], new: dict[str, list[int]]
) -> dict[str, np.ndarray]:
    """A copy of `postings` with the `gone` slots removed and the `new` ones appended (a stem
    left with no slot is dropped)."""
    out = dict(postings)
    for word in gone.keys() | new.keys():
        slots = out.get(word, _NO_SLOTS)
        if word in gone:
            slots = slots[~np.isin(slots, np.asarray(gone[word], dtype=np.int64))]
        if word in new:
            slots = np.concatenate([slots, np.asarray(new[word], dtype=np.int64)])
        if len(slots):
            out[word] = slots
        else:
            out.pop(word, None)
    return out
