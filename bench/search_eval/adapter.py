"""The only module of the search evaluation that imports the project (indexer_core).

Everything else in bench/search_eval talks to these six functions, so a move of the core's
modules is fixed here alone:

- `load_embedder(model)`, `index_tree(db_uri, repo, tree, embedder)`: index one prepared
  copy in-process as the pipeline's steps do (chunk_partition + embed_partition on one shard,
  then the search indexes the Dagster assets build), plus a full-text index over the chunks'
  raw `content` for the plain BM25 baseline;
- `search(db_uri, query, mode, k, embedder)`: the project's `search()` (hybrid, vector, text);
- `plain_vector(db_uri, query, k, embedder)`: LanceDB's vector search alone over the chunk
  embeddings: the query embedded as the project embeds it, the k nearest chunks as they come
  (no merging of a long function's parts, no ranking stage), the vector counterpart of
  `plain_bm25`;
- `plain_bm25(db_uri, query, k)`: LanceDB's FTS alone over `content`: the raw query (no
  camelCase expansion), no path/scope/name text, no name rankings, no fusion, no merging of a
  long function's parts. Text mode differs from it in all of that except fusion: it searches
  `search_text` (path, scope, name and content, camelCase words split) with the query expanded
  the same way, and collapses the parts of one long function into one hit.
"""

from __future__ import annotations

import time

from indexer_core.embedding.model import load_embedder as _load_embedder
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.search import indexes as search_index
from indexer_core.search.filters import SearchFilters
from indexer_core.search.query import MODES, embed_query
from indexer_core.search.query import search as _search
from indexer_core.storage import tables as storage

PLAIN_COLUMN = "content"
SEARCH_MODES = tuple(MODES)  # hybrid, vector, text


def load_embedder(model: str):
    return _load_embedder(model)


def index_tree(db_uri: str, repo: str, tree: str, embedder) -> dict:
    """Index a prepared copy as one partition; rerunning touches only changed files."""
    settings = IndexSettings(shards=1, use_git=False, model=embedder.model_name)
    t0 = time.perf_counter()
    chunked = chunk_partition(db_uri, repo, tree, 0, settings)
    t1 = time.perf_counter()
    embedded = embed_partition(db_uri, repo, 0, embedder)
    t2 = time.perf_counter()
    search_index.build_fts_indexes(db_uri)  # drops FTS indexes of other columns: plain goes after
    search_index.build_vector_index(db_uri)
    _build_plain_index(db_uri)
    t3 = time.perf_counter()
    return {
        "files": chunked.files,
        "skipped": len(chunked.skipped),
        "chunks": chunked.chunks_total,
        "embedded": embedded.embedded,
        "embeddings_reused": embedded.reused,
        "chunk_seconds": round(t1 - t0, 1),
        "embed_seconds": round(t2 - t1, 1),
        "search_index_seconds": round(t3 - t2, 1),
    }


def _build_plain_index(db_uri: str) -> None:
    from lancedb.index import FTS

    table = storage.open_chunks(storage.connect(db_uri))
    table.create_index(PLAIN_COLUMN, config=FTS(), replace=True)


def search(db_uri: str, query: str, mode: str, k: int, embedder) -> list[tuple[str, int, int]]:
    hits = _search(db_uri, query, k=k, mode=mode, embedder=embedder, filters=SearchFilters())
    return [(h.path, h.start_line, h.end_line) for h in hits]


def plain_bm25(db_uri: str, query: str, k: int) -> list[tuple[str, int, int]]:
    table = storage.open_chunks(storage.connect(db_uri))
    rows = (
        table.search(query, query_type="fts", fts_columns=[PLAIN_COLUMN])
        .limit(k)
        .select(["path", "start_line", "end_line", "_score"])
        .to_arrow()
        .to_pylist()
    )
    return [(r["path"], r["start_line"], r["end_line"]) for r in rows]


def plain_vector(db_uri: str, query: str, k: int, embedder) -> list[tuple[str, int, int]]:
    table = storage.connect(db_uri).open_table(storage.VECTORS)
    vector = embed_query(embedder, query)
    rows = (
        table.search(vector, vector_column_name="vector")
        .distance_type("cosine")
        .limit(k)
        .select(["path", "start_line", "end_line", "_distance"])
        .to_arrow()
        .to_pylist()
    )
    return [(r["path"], r["start_line"], r["end_line"]) for r in rows]
