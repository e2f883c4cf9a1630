"""How hybrid search turns its rankings into one list.

Rankings are fused by weighted reciprocal rank: vector similarity, BM25 over chunk
text, and chunk-name matches (`names.py`). The weights depend on what the query looks like:
a sentence is answered best by the embedding, an identifier by names and exact words.

A function too long for one chunk is stored as `name (part i/n)` chunks under one parent.
Those parts are one answer: `PartGroups` maps each part to its function so search can keep
the best-scoring part per function and report the whole function's line range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from indexer_core.names import looks_like_code, query_identifiers

RRF_K = 10
# Weights per query kind (chosen on bench/retrieval_eval.py's dev seed 11, checked on seed 7
# and by tests/core/test_search.py). The name rankings' weights are also scaled by their own
# 0-1 match scores. BM25 over `search_text` (camelCase split) is nearly as good as the
# embedding on sentences in camelCase languages, hence text 0.5 (0.3 before it had the words).
WEIGHTS: dict[str, dict[str, float]] = {
    "natural": {"vector": 1.0, "text": 0.5, "names": 0.0, "words": 0.6},
    "identifier": {"vector": 0.5, "text": 1.0, "names": 3.0, "words": 0.0},
}
_PART = re.compile(r"^(?P<base>.*?)\s*\(part (?P<i>\d+)/(?P<n>\d+)\)$")
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
    """Weighted reciprocal rank fusion, scaled so that first place everywhere scores 1.0."""
    weights = WEIGHTS[kind]
    fused: dict[str, float] = {}
    best = sum(weights[name] for name in rankings) / (RRF_K + 1)
    for name, ranking in rankings.items():
        weight = weights[name]
        for rank, (cid, score) in enumerate(ranking):
            scale = score if name in ("names", "words") else 1.0
            fused[cid] = fused.get(cid, 0.0) + weight * scale / (RRF_K + rank + 1)
    return {cid: score / best for cid, score in fused.items()} if best else fused


@dataclass
class PartGroups:
    """Chunks that are parts of one function, keyed by chunk id (one table version)."""

    group_of: dict[str, int] = field(default_factory=dict)
    members: list[list[str]] = field(default_factory=list)  # chunk ids in line order
    spans: list[tuple[int, int]] = field(default_factory=list)  # first and last line

    @classmethod
    def build(cls, rows: list[dict]) -> PartGroups:
        """Group `(part i/n)` chunks by repo, path, parent and base name."""
        found: dict[tuple, list[dict]] = {}
        for row in rows:
            match = _PART.match(row.get("name") or "")
            if match:
                key = (row["repo"], row["path"], row.get("parent_id", ""), match["base"], match["n"])
                found.setdefault(key, []).append(row)
        groups = cls()
        for parts in found.values():
            if len(parts) < 2:
                continue
            parts.sort(key=lambda r: r["start_line"])
            number = len(groups.members)
            groups.members.append([r["chunk_id"] for r in parts])
            groups.spans.append((parts[0]["start_line"], max(r["end_line"] for r in parts)))
            for r in parts:
                groups.group_of[r["chunk_id"]] = number
        return groups

    def collapse(self, ordered: list[str]) -> list[tuple[str, int | None]]:
        """Best-first chunk ids with later parts of an already listed function dropped.

        Returns (chunk id, group number or None) pairs; the id is the best part's.
        """
        seen: set[int] = set()
        out: list[tuple[str, int | None]] = []
        for cid in ordered:
            group = self.group_of.get(cid)
            if group is not None:
                if group in seen:
                    continue
                seen.add(group)
            out.append((cid, group))
        return out


def base_name(name: str) -> str:
    """`read (part 2/3)` -> `read`."""
    match = _PART.match(name or "")
    return match["base"] if match else name
