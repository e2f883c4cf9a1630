"""The code-aware ranking stage after fusion: files as the unit of relevance.

Fusion ranks chunks; a reader wants the right files, each shown once at its best span. This
stage takes the best candidates of any mode (ranks turned into reciprocal-rank scores, or
hybrid's fused scores), then

- weighs each chunk by what its file is for (`file_roles.py`): tests, examples, vendored and
  generated code, documentation and configuration count less, unless the query names them;
- puts definitions ahead of references: for an identifier query, a unit whose own name is
  the identifier counts more than chunks that merely mention it; top-level statement chunks
  count a little less than named units;
- matches the query's words against the file's path (`router` meets `lib/router/index.js`);
- sums each file's evidence: its best chunk plus a decaying share of the others, members of
  one class or module counting more together (the `parent_id` hierarchy), so a file or class
  many chunks point at rises; for a hybrid sentence query also each ranking's best chunk of
  the file (the embedding's best and BM25's best may be two functions of one file);
- returns the best chunk of each file at the file's score, best file first; a file's further
  chunks follow at their own score times REPEAT, so a repeat of one file takes the place of
  another file only on stronger evidence; every pick carries why it ranks there (`--explain`).

Deterministic (ties by chunk id) and cheap: a few hundred candidates, no table reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from indexer_core.search import file_roles
from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.name_words import query_words, stem
from indexer_core.search.names import query_identifiers, word_parts

# How many candidates (after collapsing parts) the stage looks at.
CANDIDATES = 150
# Weight of a file's role when the query does not ask for it.
ROLE_WEIGHTS = {
    file_roles.CODE: 1.0,
    file_roles.TEST: 0.55,
    file_roles.EXAMPLE: 0.6,
    file_roles.VENDOR: 0.5,
    file_roles.GENERATED: 0.5,
    file_roles.DOCS: 0.45,
    file_roles.CONFIG: 0.5,
}
# Documentation and configuration hits allowed in the top k of a code question (the rest
# follow the code).
MAX_NON_CODE = 2
DEFINITION_BOOST = 1.25  # identifier query, unit named exactly so
STATEMENTS_WEIGHT = 0.9  # a chunk of top-level statements, not a named unit
PATH_BOOST = 0.15  # times the share of the file name's words the query mentions
DIR_BOOST = 0.05  # times the share of the directories' words the query mentions
# A file's score: best chunk + SHARE * second + SHARE^2 * third ...; members of one parent
# (class, module) add SIBLING_SHARE of theirs instead.
SHARE = 0.25
SIBLING_SHARE = 0.4
EVIDENCE = 4  # chunks per file that count
# Hybrid, sentences: a file's evidence is also each ranking's best for it, summed over the
# rankings (its best weighted contribution to the fused score in each, `_file_evidence`), so a
# file whose one function the embedding ranks first and another BM25 ranks first is first,
# where chunk fusion left each function at half marks. What that sum holds beyond the file's
# best chunk is added to the file's score, and its further chunks then count EVIDENCE_SHARE
# instead of SHARE (the cross-ranking sum already counts them). Search eval NDCG@10 (hybrid,
# mean over languages) .9182 -> .9279 (dev .9327 -> .9370, held-out .9038 -> .9187); without
# the lower share .9251 (dev .9325); for identifier queries as well .9234 (symbols .990 ->
# .985). Docstring->function sets: about one query a language lower (recall@10 -.005).
FILE_EVIDENCE_KINDS = frozenset({"natural"})
EVIDENCE_SHARE = 0.15
# A file's further chunks rank at their own score times REPEAT (each of them, not REPEAT^n):
# a strong function of the best file still beats a weak file's best chunk. Compounding
# (REPEAT^(n-1) for the n-th) pushed a file's 4th-8th functions, often the answer to a question
# about one function, below other files' weak chunks: docstring->function recall@10
# (bench/retrieval_eval.py, hybrid, seeds 7 / 11) went Go .820 / .820 -> .860 / .887 and
# JavaScript .820 / .813 -> .847 / .847 without it, for -.001 NDCG@10 on the search eval.
# 0.5 gave about the same file-level NDCG but cost function-level recall; 1.0 cost the search
# eval .008.
REPEAT = 0.8
# Kinds that are named units of code; other chunks (`module`, `preproc`, ...) are runs of
# top-level statements. (`constructor`, the Java chunker's, was missing: constructors were
# weighed as statements. C's `typedef` as a unit cost the search eval's C one query.)
UNIT_KINDS = frozenset(
    {
        "function",
        "method",
        "constructor",
        "class",
        "interface",
        "struct",
        "enum",
        "trait",
        "impl",
        "type",
        "macro",
        "namespace",
        "constant",
        "record",
        "object",
        "union",
        "section",
    }
)


@dataclass
class Pick:
    """One result of the stage: a chunk (the best part of a split unit), its score, why."""

    chunk_id: str
    group: int | None
    score: float  # the stage's score, for ordering
    why: dict = field(default_factory=dict)
    also: list[str] = field(default_factory=list)  # other matching chunks of the same file


def rank_scores(ordered: list[str]) -> dict[str, float]:
    """Reciprocal-rank scores (first = 1.0) for a single mode's ranking."""
    from indexer_core.search.ranking import RRF_K

    return {cid: (RRF_K + 1) / (RRF_K + rank + 1) for rank, cid in enumerate(ordered)}


@lru_cache(maxsize=65536)
def _path_words(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """Stemmed words of a file's name (no extension) and of its directories."""
    parts = path.split("/")
    stem_name = parts[-1].split(".")[0]
    if stem_name in ("index", "mod", "__init__", "main", "lib") and len(parts) > 1:
        stem_name = parts[-2]  # `router/index.js` is the router
    name = frozenset(stem(w) for w in word_parts(stem_name) if len(w) >= 2)
    dirs = frozenset(stem(w) for d in parts[:-1] for w in word_parts(d) if len(w) >= 3)
    return name, dirs - name


def query_terms(query: str) -> frozenset[str]:
    """Stemmed words of the query and of its identifiers' parts."""
    words = set(query_words(query))
    for ident in query_identifiers(query):
        words.update(stem(w) for w in word_parts(ident) if len(w) >= 2)
    return frozenset(words)


def _defined_names(query: str) -> frozenset[str]:
    """Lower-case last elements of the query's identifiers: `HttpClient.send` -> send."""
    out = set()
    for ident in query_identifiers(query):
        out.add(re.split(r"\.|::|->|#", ident)[-1].lower())
        out.add(ident.lower())
    return frozenset(out)


def rerank(
    catalog: ChunkCatalog,
    picked: list[tuple[str, int | None]],
    base: dict[str, float],
    query: str,
    kind: str,
    k: int,
    evidence: dict[str, dict[str, float]] | None = None,
) -> list[Pick]:
    """Order the collapsed candidates (`picked`, best first) by file, best chunk per file.

    `evidence`: what each ranking added to `base` (hybrid's `ranking.contributions`)."""
    asked = file_roles.asked_roles(query)
    terms = query_terms(query)
    defined = _defined_names(query) if kind == "identifier" else frozenset()
    scored: list[Pick] = []
    weight_of: dict[str, float] = {}
    for cid, group in picked[:CANDIDATES]:
        row = catalog.row(cid)
        why: dict = {"base": round(base[cid], 4)}
        weight = _chunk_weight(row, asked, terms, defined, why) if row is not None else 1.0
        weight_of[cid] = weight
        scored.append(Pick(cid, group, base[cid] * weight, why))
    files: dict[str, list[Pick]] = {}
    for pick in sorted(scored, key=lambda p: (-p.score, p.chunk_id)):
        row = catalog.row(pick.chunk_id)
        key = f"{row['repo']}\x00{row['path']}" if row else pick.chunk_id
        files.setdefault(key, []).append(pick)
    ranked: list[tuple[float, float, str, Pick]] = []
    across = bool(evidence) and kind in FILE_EVIDENCE_KINDS
    for picks in files.values():
        best = picks[0]
        total = _file_score(catalog, picks, EVIDENCE_SHARE if across else SHARE)
        if across and len(picks) > 1:
            extra = _file_evidence(picks, evidence, weight_of) - best.score
            if extra > 0:
                total += extra
                best.why["file_rankings"] = f"+{extra:.4f}: other chunks lead some rankings"
        if total > best.score:
            best.why["file"] = f"+{total - best.score:.4f} from {len(picks) - 1} more chunk(s)"
        best.also = [p.chunk_id for p in picks[1:4]]
        ranked.append((total, best.score, best.chunk_id, best))
        for n, pick in enumerate(picks[1:], 1):  # again the same file: worth REPEAT as much
            pick.why["repeat"] = f"chunk {n + 1} of its file x{REPEAT}"
            ranked.append((pick.score * REPEAT, pick.score, pick.chunk_id, pick))
    ranked.sort(key=lambda t: (-t[0], -t[1], t[2]))
    out = []
    for total, _, _, pick in ranked:
        pick.score = total
        out.append(pick)
    return _limit_non_code(catalog, out, asked, k)


def is_statements(row: dict | None) -> bool:
    """A chunk of top-level statements (a module's code outside named units), not a unit."""
    return row is not None and row.get("kind") not in UNIT_KINDS


def _chunk_weight(row: dict, asked, terms, defined, why: dict) -> float:
    weight = 1.0
    role = file_roles.file_role(row["path"], row.get("language") or "")
    if role != file_roles.CODE and role not in asked:
        weight *= ROLE_WEIGHTS[role]
        why["role"] = f"{role} x{ROLE_WEIGHTS[role]}"
    name = (row.get("name") or "").lower()
    last = re.split(r"\.|::|->|#", name)[-1] if name else ""
    if defined and (name in defined or last in defined) and row.get("kind") in UNIT_KINDS:
        weight *= DEFINITION_BOOST
        why["definition"] = f"{row.get('kind')} {row.get('name')} x{DEFINITION_BOOST}"
    elif row.get("kind") not in UNIT_KINDS:
        weight *= STATEMENTS_WEIGHT
        why["statements"] = f"{row.get('kind')} x{STATEMENTS_WEIGHT}"
    if terms:
        name_words, dir_words = _path_words(row["path"])
        boost = 0.0
        if name_words:
            boost += PATH_BOOST * len(name_words & terms) / len(name_words)
        if dir_words:
            boost += DIR_BOOST * len(dir_words & terms) / len(dir_words)
        if boost:
            weight *= 1.0 + boost
            why["path"] = f"x{1.0 + boost:.2f}"
    return weight


def _file_score(catalog: ChunkCatalog, picks: list[Pick], share: float = SHARE) -> float:
    """Best chunk plus decaying shares (`share`) of the next ones; siblings (same parent)
    share more."""
    best = picks[0]
    best_row = catalog.row(best.chunk_id)
    parent = best_row.get("parent_id") if best_row else None
    total, decay, siblings = best.score, 1.0, 0
    for pick in picks[1:EVIDENCE]:
        row = catalog.row(pick.chunk_id)
        same_parent = bool(parent) and row is not None and row.get("parent_id") == parent
        siblings += same_parent
        decay *= SIBLING_SHARE if same_parent else share
        total += decay * pick.score
    if siblings >= 2:
        best.why["members"] = f"{siblings + 1} members of one parent match"
    return total


def _file_evidence(
    picks: list[Pick], evidence: dict[str, dict[str, float]], weight_of: dict[str, float]
) -> float:
    """The sum over the rankings of the file's best contribution in each (each chunk's
    contribution times its weight: role, definition, path)."""
    return sum(
        max(values.get(p.chunk_id, 0.0) * weight_of[p.chunk_id] for p in picks)
        for values in evidence.values()
    )


def _limit_non_code(catalog: ChunkCatalog, picks: list[Pick], asked, k: int) -> list[Pick]:
    """At most MAX_NON_CODE documentation or configuration files among the first k."""
    if {file_roles.DOCS, file_roles.CONFIG} & asked:
        return picks
    head, moved, shown = [], [], 0
    for pick in picks:
        row = catalog.row(pick.chunk_id)
        role = file_roles.file_role(row["path"], row.get("language") or "") if row else ""
        if role in (file_roles.DOCS, file_roles.CONFIG):
            if shown >= MAX_NON_CODE and len(head) < k:
                moved.append(pick)
                continue
            shown += 1
        head.append(pick)
    return head[:k] + moved + head[k:] if moved else picks
