"""Metrics of one query's top 10 against its judged spans (plain Python, no project imports).

A result is (path, start, end), 1-based inclusive lines. A query's relevant spans carry a
grade (2 = the answer, 1 = partially relevant); a file's grade is the highest of its spans.

- NDCG@10 (file level, linear gains = grade): each file counts once, at the rank of its first
  result; later results of the same file gain nothing. The ideal ranking puts the judged
  files first, best grade first.
- recall@10 (file level): share of the judged files (any grade) among the top 10's files.
- MRR@10: 1 / rank of the first result in a judged file (0 when none in the top 10).
- span recall@10: share of the judged spans that some top-10 result overlaps by at least
  half of the smaller of the two ranges.
"""

from __future__ import annotations

import math

K = 10
METRICS = ("ndcg@10", "recall@10", "mrr@10", "span_recall@10")
RULES = (
    "file-level NDCG@10 with linear gains (grade 2 answer, 1 partial; a file's gain is its best "
    "span's grade, counted once at its first rank); file-level recall@10 over judged files of "
    "any grade; MRR@10 of the first result in a judged file; span recall@10: a judged span is "
    "found when a top-10 result overlaps it by >= half of the smaller range"
)


def overlap_ok(a: tuple[int, int], b: tuple[int, int]) -> bool:
    lines = min(a[1], b[1]) - max(a[0], b[0]) + 1
    smaller = min(a[1] - a[0], b[1] - b[0]) + 1
    return lines > 0 and 2 * lines >= smaller


def file_grades(relevant: list[dict]) -> dict[str, int]:
    grades: dict[str, int] = {}
    for r in relevant:
        grades[r["path"]] = max(grades.get(r["path"], 0), int(r["grade"]))
    return grades


def score(
    results: list[tuple[str, int, int]], relevant: list[dict], k: int = K
) -> dict[str, float]:
    top = results[:k]
    grades = file_grades(relevant)
    dcg, seen, first_hit = 0.0, set(), None
    for rank, (path, _, _) in enumerate(top, 1):
        if path in grades and first_hit is None:
            first_hit = rank
        if path in seen:
            continue
        seen.add(path)
        dcg += grades.get(path, 0) / math.log2(rank + 1)
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    found_spans = sum(
        1
        for r in relevant
        if any(
            path == r["path"] and overlap_ok((s, e), (r["start"], r["end"])) for path, s, e in top
        )
    )
    return {
        "ndcg@10": dcg / idcg if idcg else 0.0,
        "recall@10": len(seen & set(grades)) / len(grades) if grades else 0.0,
        "mrr@10": 1.0 / first_hit if first_hit else 0.0,
        "span_recall@10": found_spans / len(relevant) if relevant else 0.0,
    }


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {m: float("nan") for m in METRICS}
    return {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}
