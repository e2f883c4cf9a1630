"""Searching the index: vector, full-text and hybrid (reciprocal rank fusion) queries.

The query is embedded with the model that built the index; a table built by another model
or of another dimension is a clear error, never silently compared.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass

from indexer_core import storage

MODES = ("hybrid", "vector", "text")
_RRF_K = 60


@dataclass(frozen=True)
class SearchFilters:
    repo: str | None = None
    language: str | None = None
    kind: str | None = None
    path_glob: str | None = None

    def where(self) -> str | None:
        """SQL prefilter from the exact-match fields; the glob is applied after retrieval."""
        clauses = []
        if self.repo:
            clauses.append(storage.repo_filter(self.repo))
        if self.language:
            clauses.append(f"language = {storage.sql_string(self.language)}")
        if self.kind:
            clauses.append(f"kind = {storage.sql_string(self.kind)}")
        return " AND ".join(clauses) or None

    def accepts_path(self, path: str) -> bool:
        return not self.path_glob or fnmatch.fnmatchcase(path, self.path_glob)


@dataclass
class SearchHit:
    chunk_id: str
    repo: str
    path: str
    start_line: int
    end_line: int
    kind: str
    name: str
    language: str
    score: float
    content: str
    parent_id: str = ""

    def snippet(self, lines: int = 3) -> str:
        body = [line for line in self.content.split("\n") if line.strip()]
        return "\n".join(body[:lines])

    def to_dict(self) -> dict:
        return asdict(self)


class IndexModelMismatch(RuntimeError):
    """The index was built with another model than the one asked to search it."""


def indexed_models(db) -> set[str]:
    table = db.open_table(storage.VECTORS)
    rows = storage.read_rows(table, None, ["model"])
    return set(rows.column("model").to_pylist())


def search(
    db_uri: str,
    query: str,
    k: int = 10,
    mode: str = "hybrid",
    filters: SearchFilters = SearchFilters(),
    model: str | None = None,
    min_score: float | None = None,
    embedder=None,
) -> list[SearchHit]:
    """The k best chunks for a query; scores are cosine similarity (vector), BM25 (text) or RRF."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    db = storage.connect(db_uri)
    names = storage.table_names(db)
    if storage.CHUNKS not in names or (mode != "text" and storage.VECTORS not in names):
        raise storage.StorageError(f"no index in {db_uri}: run `code-index index PATH` first")
    fetch = max(k * 5, 50) if filters.path_glob else max(k * 2, 20)
    ranked: dict[str, list[tuple[str, float]]] = {}
    if mode in ("vector", "hybrid"):
        ranked["vector"] = _vector_ranking(db, query, fetch, filters, model, embedder)
    if mode in ("text", "hybrid"):
        ranked["text"] = _text_ranking(db, query, fetch, filters)
    if mode == "hybrid":
        scores = _rrf([ranked["vector"], ranked["text"]])
    else:
        scores = dict(ranked[mode])
    ordered = sorted(scores, key=lambda cid: -scores[cid])
    hits = _load_hits(db, ordered[: fetch], scores)
    hits = [h for h in hits if filters.accepts_path(h.path)]
    if min_score is not None:
        hits = [h for h in hits if h.score >= min_score]
    return hits[:k]


def _vector_ranking(db, query, fetch, filters, model, embedder) -> list[tuple[str, float]]:
    from indexer_core.embedding import load_embedder

    table = db.open_table(storage.VECTORS)
    models = indexed_models(db)
    if embedder is None:
        wanted = model or (next(iter(models)) if len(models) == 1 else None)
        if wanted is None:
            raise IndexModelMismatch(f"the index holds vectors of several models {sorted(models)}: name one")
        embedder = load_embedder(wanted, "auto", 0)
    if models and embedder.model_name not in models:
        raise IndexModelMismatch(
            f"index was built with {sorted(models)}, not {embedder.model_name!r}: search with the same model"
        )
    if storage.vector_dim(table) != embedder.dim:
        raise IndexModelMismatch(f"index vectors have {storage.vector_dim(table)} dimensions, the model makes {embedder.dim}")
    vector = embedder.encode([query])[0]
    q = table.search(vector, vector_column_name="vector").metric("cosine").limit(fetch)
    where = filters.where()
    if where:
        q = q.where(where, prefilter=True)
    rows = q.select(["chunk_id", "_distance"]).to_arrow()
    ids = rows.column("chunk_id").to_pylist()
    distances = rows.column("_distance").to_pylist()
    return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances)]


def ensure_fts_index(db) -> None:
    """Build the full-text index over chunk content when it is missing."""
    table = db.open_table(storage.CHUNKS)
    if not any(getattr(i, "index_type", "") == "FTS" or "content" in getattr(i, "columns", []) for i in table.list_indices()):
        table.create_fts_index("content", replace=True)


def _text_ranking(db, query, fetch, filters) -> list[tuple[str, float]]:
    table = db.open_table(storage.CHUNKS)
    ensure_fts_index(db)
    q = table.search(query, query_type="fts", fts_columns="content").limit(fetch)
    where = filters.where()
    if where:
        q = q.where(where, prefilter=True)
    rows = q.select(["chunk_id", "_score"]).to_arrow()
    return list(zip(rows.column("chunk_id").to_pylist(), (float(s) for s in rows.column("_score").to_pylist())))


def _rrf(rankings: list[list[tuple[str, float]]]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (cid, _score) in enumerate(ranking):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (_RRF_K + rank + 1)
    return fused


def _load_hits(db, chunk_ids: list[str], scores: dict[str, float]) -> list[SearchHit]:
    if not chunk_ids:
        return []
    table = db.open_table(storage.CHUNKS)
    rows = storage.read_rows(
        table, storage.id_list_filter("chunk_id", chunk_ids),
        ["chunk_id", "repo", "path", "start_line", "end_line", "kind", "name", "language", "content", "parent_id"],
    ).to_pylist()
    by_id = {r["chunk_id"]: r for r in rows}
    return [SearchHit(score=scores[cid], **by_id[cid]) for cid in chunk_ids if cid in by_id]
