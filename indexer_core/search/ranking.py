"""How hybrid search turns its rankings into one list.

Rankings are fused, vector similarity, BM25 over chunk text, and chunk-name matches
(`names.py`), by what the query looks like: a sentence by a weighted sum of normalised
scores (the embedding and BM25 about equally), an identifier by weighted reciprocal rank
led by exact names.

A function too long for one chunk is stored as chunks `part` 1..`parts` under one parent.
Those parts are one answer: `PartGroups` maps each part to its function so search can keep
the best-scoring part per function and report the whole function's line range.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from indexer_core.search.names import looks_like_code, query_identifiers

RRF_K = 10
# Sentences and identifiers are fused differently (FUSION):
# - an identifier-like query by weighted reciprocal rank (RRF_K): the name rankings' exact
#   matches lead, and a rank says all that matters;
# - a sentence by a weighted sum of each ranking's own scores, min-max normalised over its
#   first SCORE_DEPTH candidates (1 = that ranking's best, 1/SCORE_DEPTH = its SCORE_DEPTH-th,
#   `normalised`): how far a chunk stands above the others counts, not only its place: a
#   chunk far ahead in BM25 that the embedding missed keeps a strong score, one barely ahead
#   does not (reciprocal rank scored both alike).
#   Chosen on the development samples (bench/retrieval_eval.py seed 11, the search eval's
#   dev repositories), checked on the held-out ones (seed 7, the search eval's held-out
#   repositories): docstring->function hybrid MRR@10 seed 11 .559 -> .600 and seed 7 .551
#   -> .565 (mean of Python, Go, JavaScript), recall@10 .864 -> .869 and .847 -> .838 (one
#   or two queries a language); search eval NDCG@10 .9157 -> .9182 (dev .9314 -> .9326,
#   held-out .8999 -> .9038). Name words 0.45 or 0.6 instead of 0.3: dev NDCG .929 / .926.
# Weights per kind; the name rankings' scores are their own 0-1 match qualities.
# Reciprocal rank for sentences (before): vector 1.0, text 0.75 (0.5 before the ranking
# stage, 0.3 before BM25 saw camelCase words), name words 0.6.
WEIGHTS: dict[str, dict[str, float]] = {
    "natural": {"vector": 1.0, "text": 1.0, "names": 0.0, "words": 0.3},
    "identifier": {"vector": 0.5, "text": 1.0, "names": 3.0, "words": 0.0},
}
FUSION = {"natural": "scores", "identifier": "ranks"}
SCORE_DEPTH = 50
_OWN_SCALE = ("names", "words")  # rankings whose scores are already 0-1 match qualities
_WORD = re.compile(r"[A-Za-z_$][\w$.:#>-]*")


def query_kind(query: str) -> str:
    """`identifier` for code-like or very short queries, `natural` for sentences."""
    words = query.split()
    if not words:
        return "natural"
    # Sentence punctuation is not code: `Creates a StreamWriter instance.` is a sentence.
    code = sum(1 for w in _WORD.findall(query) if looks_like_code(w.rstrip(".:#>-")))
    if len(words) <= 3 and query_identifiers(query):
        return "identifier"
    return "identifier" if code * 2 >= len(words) else "natural"


def fuse(rankings: dict[str, list[tuple[str, float]]], kind: str = "natural") -> dict[str, float]:
    """One 0-1 score per candidate (1.0: first in every ranking), by FUSION[kind]."""
    return summed(contributions(rankings, kind))


def summed(contributed: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each candidate's fused score: the sum of what each ranking contributed to it."""
    fused: dict[str, float] = {}
    for values in contributed.values():
        for cid, value in values.items():
            fused[cid] = fused.get(cid, 0.0) + value
    return fused


def contributions(
    rankings: dict[str, list[tuple[str, float]]], kind: str = "natural"
) -> dict[str, dict[str, float]]:
    """What each ranking adds to each candidate's fused score (`fuse` is their sum), by
    FUSION[kind]: its weight times its normalised score, or times its reciprocal rank; scaled
    so that first place in every ranking sums to 1.0."""
    weights = WEIGHTS[kind]
    if FUSION[kind] == "scores":
        return _score_contributions(rankings, weights)
    return _rank_contributions(rankings, weights)


def _rank_contributions(
    rankings: dict[str, list[tuple[str, float]]], weights: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Weighted reciprocal rank, scaled so that first place everywhere sums to 1.0."""
    best = sum(weights[name] for name in rankings) / (RRF_K + 1)
    out: dict[str, dict[str, float]] = {}
    for name, ranking in rankings.items():
        weight = weights[name] / best if best else weights[name]
        values = out.setdefault(name, {})
        for rank, (cid, score) in enumerate(ranking):
            scale = score if name in _OWN_SCALE else 1.0
            values[cid] = values.get(cid, 0.0) + weight * scale / (RRF_K + rank + 1)
    return out


def _score_contributions(
    rankings: dict[str, list[tuple[str, float]]], weights: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Weighted normalised scores (`normalised`), divided by the weights present."""
    total = sum(weights[name] for name in rankings)
    out: dict[str, dict[str, float]] = {}
    if not total:
        return out
    for name, ranking in rankings.items():
        weight = weights[name] / total
        values = out.setdefault(name, {})
        for cid, value in ranking if name in _OWN_SCALE else normalised(ranking):
            values[cid] = values.get(cid, 0.0) + weight * value
    return out


def normalised(ranking: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """A ranking's scores mapped to 0-1: its best candidate 1, its SCORE_DEPTH-th (or last)
    1/SCORE_DEPTH (being listed at all is some evidence), linear between; later ones 0; all 1
    when they are all equal. The floor is a fixed depth, so a candidate's value does not
    depend on how many were fetched."""
    if not ranking:
        return []
    scores = sorted((score for _, score in ranking), reverse=True)
    top, floor = scores[0], scores[min(len(scores), SCORE_DEPTH) - 1]
    if top <= floor:
        return [(cid, 1.0) for cid, _ in ranking]
    span, least = top - floor, 1.0 / SCORE_DEPTH
    return [
        (cid, least + (1.0 - least) * (score - floor) / span if score >= floor else 0.0)
        for cid, score in ranking
    ]


@dataclass
class PartGroups:
    """Chunks that are parts of one function, keyed by chunk id (one table version).

    `updated` follows a change of the table, regrouping only the functions whose parts
    changed; group numbers are internal (a regrouped function gets a new one), the groups
    themselves are the same as a fresh build's.
    """

    group_of: dict[str, int] = field(default_factory=dict)
    members: list[list[str]] = field(default_factory=list)  # chunk ids in line order
    spans: list[tuple[int, int]] = field(default_factory=list)  # first and last line
    # every chunk of a split unit: function key -> chunk id -> (start line, end line)
    parts: dict[tuple, dict[str, tuple[int, int]]] = field(default_factory=dict)

    @classmethod
    def build(cls, rows: Iterable[dict]) -> PartGroups:
        """Group the parts of split units by repo, path, parent, name and part count."""
        return cls().updated((), rows)

    def updated(self, dropped: Iterable[dict], added: Iterable[dict]) -> PartGroups:
        """New groups with the `dropped` rows gone and the `added` ones in; self unchanged."""
        parts = dict(self.parts)
        touched: set[tuple] = set()

        def bucket(key: tuple) -> dict[str, tuple[int, int]]:
            if key not in touched:  # copied before it changes: self keeps its own
                touched.add(key)
                parts[key] = dict(parts.get(key, {}))
            return parts[key]

        for row in dropped:
            key = _part_key(row)
            if key is not None:
                bucket(key).pop(row["chunk_id"], None)
        for row in added:
            key = _part_key(row)
            if key is not None:
                bucket(key)[row["chunk_id"]] = (row["start_line"], row["end_line"])
        if not touched:
            return self
        group_of, members, spans = dict(self.group_of), list(self.members), list(self.spans)
        for key in touched:  # every old grouping of a touched function goes first ...
            for cid in self.parts.get(key, ()):
                group_of.pop(cid, None)
        for key in touched:  # ... then the functions are grouped again
            found = parts[key]
            if not found:
                del parts[key]
                continue
            if len(found) < 2:
                continue
            ordered = sorted(found, key=lambda cid: (found[cid][0], cid))
            number = len(members)
            members.append(ordered)
            spans.append((found[ordered[0]][0], max(end for _, end in found.values())))
            for cid in ordered:
                group_of[cid] = number
        return PartGroups(group_of, members, spans, parts)

    def collapse(
        self, ordered: list[str], apart: Callable[[str], bool] | None = None
    ) -> list[tuple[str, int | None]]:
        """Best-first chunk ids with later parts of an already listed function dropped.

        Returns (chunk id, group number or None) pairs; the id is the best part's. A part
        for which `apart` is true stands on its own (with its group, for the unit's span).
        """
        seen: set[int] = set()
        out: list[tuple[str, int | None]] = []
        for cid in ordered:
            group = self.group_of.get(cid)
            if group is not None and not (apart is not None and apart(cid)):
                if group in seen:
                    continue
                seen.add(group)
            out.append((cid, group))
        return out


def _part_key(row: dict) -> tuple | None:
    parts = row.get("parts") or 1
    if parts < 2:
        return None
    return (row["repo"], row["path"], row.get("parent_id", ""), row.get("name") or "", parts)
