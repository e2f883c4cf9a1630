"""Searching the index: vector, full-text and hybrid (fused) queries.

Hybrid fuses rankings (`ranking.py`): vector similarity of the query embedding, BM25 over
each chunk's `search_text` (path, scope, name and content, camelCase split into words), and
exact or partial matches of chunk names (`names.py`); sentences by their normalised scores,
the embedding and BM25 about equally, identifiers by reciprocal rank led by names and text.
In every mode the parts of one long function collapse into one result (each part of a long
run of top-level statements stands on its own), and the ranking stage (`rerank.py`) orders
files, not chunks: the best spans of the best files. The query is embedded with the model
that built the index; a table built by another model or of another dimension is a clear
error, never silently compared. Connections, tables, the model and the chunk catalogue
(metadata and row ids, `chunk_catalog.py`) are kept per process and table version, so a
query costs one embedding, one version read per table, searches that return row ids only,
and a point read of its hits' content.
"""

from __future__ import annotations

from indexer_core.embedding.query_encoder import DEFAULT_OPTIONS, QueryEncoderOptions
from indexer_core.search import declarations
from indexer_core.search import indexes as search_index
from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.filters import SearchFilters
from indexer_core.search.hits import SearchHit, load_hits
from indexer_core.search.index_view import OpenIndex, open_index
from indexer_core.search.names import expand_identifiers
from indexer_core.search.ranking import FUSION, contributions, normalised, query_kind, summed
from indexer_core.search.rerank import is_statements, query_terms, rank_scores, rerank
from indexer_core.search.row_ids import ROW_ID
from indexer_core.storage import tables as storage
from indexer_core.storage.lancedb_import import import_lancedb

lancedb = import_lancedb()

MODES = ("hybrid", "vector", "text")
# Each ranking fetches this many candidates per result asked for (at least _MIN_FETCH), so
# that collapsing the parts of a function and the path-glob check still leave k results.
_OVERFETCH = 5
_MIN_FETCH = 50


class IndexModelMismatch(RuntimeError):
    """The index was built with another model than the one asked to search it."""


def query_embedder(
    db_uri: str,
    model: str | None = None,
    embedder=None,
    version: int | None = None,
    options: QueryEncoderOptions = DEFAULT_OPTIONS,
):
    """The embedder for queries on this index; refuses a model or dimension it was not built with.

    The check is remembered per vectors-table version (`version`, when the caller has
    already read it), so a query pays for it once.
    """
    index = open_index(db_uri)
    if version is None:
        version = index.table(storage.VECTORS).version
    key = (version, model, id(embedder), options)
    checked = index.checked_embedders.get(key)
    if checked is not None:
        return checked
    embedder = _check_query_embedder(index, model, embedder, version, options)
    index.checked_embedders.clear()
    index.checked_embedders[key] = embedder
    return embedder


def load_query_encoder(model: str, options: QueryEncoderOptions = DEFAULT_OPTIONS):
    """What embeds queries for an index of `model`: its ONNX export when there is one
    (`query_encoder`: no torch import, ~8 ms a query), else the model itself, which is then
    exported so that the next process starts fast."""
    from indexer_core.embedding import query_encoder
    from indexer_core.embedding.model import load_embedder

    fast = query_encoder.load_onnx_query_encoder(model, options)
    if fast is not None:
        return fast
    embedder = load_embedder(model, "auto", 0, query_threads=options.threads)
    query_encoder.export_for_queries(embedder, model, options)
    return embedder


def _check_query_embedder(
    index: OpenIndex, model: str | None, embedder, version: int, options: QueryEncoderOptions
):
    models = index.models(version)
    if embedder is None:
        wanted = model or (next(iter(models)) if len(models) == 1 else None)
        if wanted is None:
            raise IndexModelMismatch(
                f"the index holds vectors of models {sorted(models) or 'none'}: name one with "
                f"--model"
            )
        embedder = load_query_encoder(wanted, options)
    if models and embedder.model_name not in models:
        raise IndexModelMismatch(
            f"index was built with {sorted(models)}, not {embedder.model_name!r}: search with the "
            f"same model"
        )
    dim = storage.vector_dim(index.table(storage.VECTORS))
    if dim != embedder.dim:
        raise IndexModelMismatch(
            f"index vectors have {dim} dimensions, model {embedder.model_name!r} makes "
            f"{embedder.dim}"
        )
    return embedder


def search(
    db_uri: str,
    query: str,
    k: int = 10,
    mode: str = "hybrid",
    filters: SearchFilters | None = None,
    model: str | None = None,
    min_score: float | None = None,
    embedder=None,
    query_options: QueryEncoderOptions = DEFAULT_OPTIONS,
    expand: bool = False,
    explain: bool = False,
) -> list[SearchHit]:
    """The k best results for a query: the best span of each of the best files.

    Scores: cosine similarity (vector), BM25 (text), or the fused score, 0-1
    (hybrid: 1.0 means first in every ranking), so `min_score` means the same within a mode;
    the order is the ranking stage's (`rerank.py`, its score in `rank_score`). `expand`: a
    long unit's hit holds all its parts, uncut; `explain`: each hit says why it ranks there.
    """
    filters = filters or SearchFilters()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if not query.strip():
        raise ValueError("empty query")
    index = open_index(db_uri)
    catalog = index.catalog()  # one `chunks` version for the whole query
    fetch = max(k * _OVERFETCH, _MIN_FETCH)
    ranked: dict[str, list[tuple[str, float]]] = {}
    evidence: dict[str, dict[str, float]] | None = None
    declared: dict[str, str] = {}
    kind = query_kind(query)
    if mode == "hybrid":
        # The lexical rankings run on a worker thread while the query is embedded and the
        # vector index searched (torch and LanceDB release the GIL).
        lexical = index.pool.submit(_lexical_rankings, index, catalog, query, fetch, filters, kind)
        ranked["vector"] = _vector_ranking(
            index, query, fetch, filters, model, embedder, query_options
        )
        ranked.update(lexical.result())
        evidence = contributions(ranked, kind)  # the ranking stage weighs files by them too
        scores = summed(evidence)
        best = sorted(scores, key=lambda cid: (-scores[cid], cid))
        declared = declarations.forward(
            catalog, index.table(storage.CHUNKS), best, scores, filters, is_statements
        )
    elif mode == "vector":
        ranked["vector"] = _vector_ranking(
            index, query, fetch, filters, model, embedder, query_options
        )
        scores = dict(ranked["vector"])
    else:
        ranked["text"] = _text_ranking(index, catalog, query, fetch, filters)
        scores = dict(ranked["text"])
    ordered = sorted(scores, key=lambda cid: (-scores[cid], cid))
    if min_score is not None:
        ordered = [cid for cid in ordered if scores[cid] >= min_score]
    # A long unit's parts are one result; parts of a long run of top-level statements (a
    # module body holding many functions the chunker did not see as units, a class assigned
    # to `module.exports`) are different code each, so each stands on its own, unless the
    # whole unit is asked for (`expand`).
    apart = None if expand else (lambda cid: is_statements(catalog.row(cid)))
    collapsed = catalog.groups.collapse(ordered, apart)
    base = scores if mode == "hybrid" else rank_scores([cid for cid, _ in collapsed])
    picks = rerank(catalog, collapsed, base, query, kind, k, evidence)
    hits = load_hits(
        index,
        catalog,
        [(p.chunk_id, p.group) for p in picks],
        scores,
        filters,
        k,
        expand=expand,
        terms=query_terms(query),
    )
    by_id = {p.chunk_id: p for p in picks}
    normalised_values = (
        {name: dict(normalised(r)) for name, r in ranked.items() if name in ("vector", "text")}
        if explain and mode == "hybrid" and FUSION[kind] == "scores"
        else {}
    )
    for hit in hits:
        pick = by_id[hit.chunk_id]
        hit.rank_score, hit.also = round(pick.score, 4), pick.also
        if explain:
            hit.why = {**pick.why, "rankings": _ranks(ranked, hit.chunk_id, mode)}
            if hit.chunk_id in declared:
                hit.why["declaration"] = declared[hit.chunk_id]
            if mode == "hybrid":
                hit.why["fusion"] = f"{FUSION[kind]} ({kind} query)"
                if FUSION[kind] == "scores":  # each ranking's normalised value, 0-1
                    for name, values in normalised_values.items():
                        if name in hit.why["rankings"]:
                            hit.why["rankings"][name]["value"] = round(values[hit.chunk_id], 4)
    return hits


def _ranks(ranked: dict[str, list[tuple[str, float]]], chunk_id: str, mode: str) -> dict:
    """Where a chunk stood in each ranking (1-based), and its score there."""
    out = {}
    for name, ranking in ranked.items():
        for rank, (cid, score) in enumerate(ranking, 1):
            if cid == chunk_id:
                out[name] = {"rank": rank, "score": round(score, 4)}
                break
    return out


def _lexical_rankings(
    index: OpenIndex, catalog: ChunkCatalog, query, fetch, filters, kind
) -> dict[str, list[tuple[str, float]]]:
    """BM25, and the name rankings hybrid search adds for this kind of query (non-empty only)."""
    ranked = {"text": _text_ranking(index, catalog, query, fetch, filters)}
    names = _name_ranking(catalog, query, fetch, filters)
    if names:
        ranked["names"] = names
    if kind == "natural":
        words = _word_ranking(catalog, query, fetch, filters)
        if words:
            ranked["words"] = words
    return ranked


def embed_query(embedder, query: str):
    """A query's vector: the encoder's query path (its query prefix, the ONNX session) where it
    has one, else a plain encode of the one text."""
    encode_query = getattr(embedder, "encode_query", None)
    return encode_query(query) if encode_query is not None else embedder.encode([query])[0]


def _vector_ranking(
    index: OpenIndex, query, fetch, filters, model, embedder, options: QueryEncoderOptions
) -> list[tuple[str, float]]:
    table = index.table(storage.VECTORS)
    version = table.version  # read once: the model check and the row-id map share it
    embedder = query_embedder(index.db_uri, model, embedder, version, options)
    rows_map = index.vector_rows(version)
    vector = embed_query(embedder, query)
    q = table.search(vector, vector_column_name="vector").distance_type("cosine").limit(fetch)
    where = filters.where()
    if where:
        q = q.where(where, prefilter=True)
    rows = q.select(["_distance"]).with_row_id(True).to_arrow()
    ids = rows_map.chunk_ids(table, rows.column(ROW_ID).to_pylist())
    distances = rows.column("_distance").to_pylist()
    return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances) if cid is not None]


def _text_ranking(
    index: OpenIndex, catalog: ChunkCatalog, query, fetch, filters
) -> list[tuple[str, float]]:
    index.ensure_fts(catalog.version)
    table = index.table(storage.CHUNKS)
    text = expand_identifiers(query)  # as the indexed text: `isUnspecified` also as its words
    q = table.search(text, query_type="fts", fts_columns=list(search_index.FTS_COLUMNS)).limit(
        fetch
    )
    where = filters.where()
    if where:
        q = q.where(where, prefilter=True)
    rows = q.select(["_score"]).with_row_id(True).to_arrow()
    ids = catalog.by_row.chunk_ids(table, rows.column(ROW_ID).to_pylist())
    return [
        (cid, float(s)) for cid, s in zip(ids, rows.column("_score").to_pylist()) if cid is not None
    ]


def _name_ranking(catalog: ChunkCatalog, query, fetch, filters) -> list[tuple[str, float]]:
    names = catalog.names
    ranked = names.rank(query, accept=filters.accepts, limit=fetch)
    return [(names.rows[i]["chunk_id"], score) for i, score in ranked]


def _word_ranking(catalog: ChunkCatalog, query, fetch, filters) -> list[tuple[str, float]]:
    rows = catalog.names.rows
    ranked = catalog.words.rank(query, accept=lambda i: filters.accepts(rows[i]), limit=fetch)
    return [(rows[i]["chunk_id"], score) for i, score in ranked]
