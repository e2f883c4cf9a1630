"""The indexes search needs: full-text over chunk text and names, ANN over vectors.

They are built at index time (by the Dagster assets downstream of `chunks` and `vectors`), so
a query never pays for checking or building them. The ANN index is built only once the
vectors table is large enough for it to beat a flat scan; below that it is dropped, so
search stays exact where exact search is cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from indexer_core.storage import tables as storage
from indexer_core.storage.thresholds import ANN_MIN_ROWS

ANN_INDEX_TYPE = "IVF_HNSW_SQ"
# One BM25 index over `search_text`: path, scope, name and content with camelCase words split
# (names.search_text), so a sentence's words meet the identifiers that spell them. English
# stemming and stop words (LanceDB's FTS defaults) on top.
FTS_COLUMNS = ("search_text",)
SCALAR_COLUMNS = ("chunk_id", "parent_id")


@dataclass
class IndexBuild:
    """What one (re)build did: shown as asset metadata."""

    table: str
    rows: int
    built: list[str]
    dropped: list[str]
    seconds: float
    note: str = ""


def _index_names(table, kind: str | None = None) -> dict[str, list[str]]:
    return {
        i.name: list(i.columns)
        for i in table.list_indices()
        if kind is None or str(getattr(i, "index_type", "")).upper().startswith(kind)
    }


def fts_ready(table) -> bool:
    """True when every full-text column search uses has an index."""
    indexed = {c for cols in _index_names(table, "FTS").values() for c in cols}
    return all(column in indexed for column in FTS_COLUMNS)


def build_fts_indexes(db_uri: str) -> IndexBuild:
    """(Re)build the full-text index on `chunks.search_text`, and the id indexes.

    Rebuilt in full rather than appended to, so rows changed since the last build are found
    by their new text (an append-only index would keep the old terms of replaced rows).
    """
    from lancedb.index import FTS

    started = time.perf_counter()
    db = storage.connect(db_uri)
    if storage.CHUNKS not in storage.table_names(db):
        raise storage.StorageError(f"no chunks table in {db_uri}: index a repository first")
    table = storage.open_chunks(db)
    # Full-text indexes of columns search no longer reads (`content` and `name` before
    # `search_text` existed) would only cost rebuilds.
    dropped = [
        n for n, cols in _index_names(table, "FTS").items() if not set(cols) & set(FTS_COLUMNS)
    ]
    for name in dropped:
        storage.with_commit_retry(lambda name=name: table.drop_index(name), table=table)
    for column in FTS_COLUMNS:
        storage.with_commit_retry(
            lambda column=column: table.create_index(column, config=FTS(), replace=True),
            table=table,
        )
    # B-tree indexes make result loading and get_chunk's parent/children lookups point reads.
    for column in SCALAR_COLUMNS:
        storage.with_commit_retry(
            lambda column=column: table.create_scalar_index(column, replace=True), table=table
        )
    return IndexBuild(
        table=storage.CHUNKS,
        rows=table.count_rows(),
        built=[f"{c}_idx" for c in FTS_COLUMNS + SCALAR_COLUMNS],
        dropped=dropped,
        seconds=time.perf_counter() - started,
    )


def build_vector_index(db_uri: str, min_rows: int | None = None) -> IndexBuild:
    """Build the cosine ANN index on `vectors.vector` when the table is big enough.

    Below `min_rows` an existing ANN index is dropped (the table shrank): flat search is
    exact and fast there. Above it the index is rebuilt so new rows are indexed too.
    """
    threshold = ANN_MIN_ROWS if min_rows is None else min_rows
    started = time.perf_counter()
    db = storage.connect(db_uri)
    if storage.VECTORS not in storage.table_names(db):
        raise storage.StorageError(f"no vectors table in {db_uri}: index a repository first")
    table = db.open_table(storage.VECTORS)
    rows = table.count_rows()
    existing = [n for n, cols in _index_names(table).items() if "vector" in cols]
    if rows < threshold:
        for name in existing:
            table.drop_index(name)
        return IndexBuild(
            table=storage.VECTORS,
            rows=rows,
            built=[],
            dropped=existing,
            seconds=time.perf_counter() - started,
            note=f"{rows} rows < {threshold}: flat (exact) search",
        )
    storage.with_commit_retry(
        lambda: table.create_index(
            metric="cosine", vector_column_name="vector", index_type=ANN_INDEX_TYPE, replace=True
        ),
        table=table,
    )
    return IndexBuild(
        table=storage.VECTORS,
        rows=rows,
        built=[f"vector_idx ({ANN_INDEX_TYPE}, cosine)"],
        dropped=[],
        seconds=time.perf_counter() - started,
        note=f"{rows} rows >= {threshold}: ANN search",
    )


def has_vector_index(table) -> bool:
    return any("vector" in cols for cols in _index_names(table).values())
