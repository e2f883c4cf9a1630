"""Searching the index: vector, full-text and hybrid (reciprocal rank fusion) queries.

Hybrid fuses rankings by weighted reciprocal rank (`ranking.py`): vector similarity of
the query embedding, BM25 over each chunk's `search_text` (path, scope, name and content,
camelCase split into words), and exact or partial matches of chunk names (`names.py`);
sentences lean on the vector ranking, identifiers on names and text. In every mode the parts of one long function collapse into one result. The query is embedded with the model that built the
index; a table built by another model or of another dimension is a clear error, never
silently compared. Connections, tables, the model and the chunk catalogue (metadata and
row ids, `chunk_catalog.py`) are kept per process and table version, so a query costs one
embedding, one version read per table, searches that return row ids only, and a point read
of its hits' content.
"""

from __future__ import annotations

import fnmatch
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta

import pyarrow.compute as pc

from indexer_core.embedding.query_encoder import DEFAULT_OPTIONS, QueryEncoderOptions
from indexer_core.search import indexes as search_index
from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.names import expand_identifiers
from indexer_core.search.ranking import fuse, query_kind
from indexer_core.search.row_ids import ROW_ID, RowIdMap
from indexer_core.storage import tables as storage
from indexer_core.storage.lancedb_import import import_lancedb

lancedb = import_lancedb()

MODES = ("hybrid", "vector", "text")
# Each ranking fetches this many candidates per result asked for (at least _MIN_FETCH), so
# that collapsing the parts of a function and the path-glob check still leave k results.
_OVERFETCH = 5
_MIN_FETCH = 50
_CONSISTENCY = timedelta(seconds=2)  # how stale a long-lived server's view may get
_HIT_COLUMNS = [
    "chunk_id",
    "repo",
    "path",
    "start_line",
    "end_line",
    "kind",
    "name",
    "language",
    "content",
    "parent_id",
]


@dataclass(frozen=True)
class SearchFilters:
    repo: str | None = None
    language: str | None = None
    kind: str | None = None
    path_glob: str | None = None

    def where(self) -> str | None:
        """SQL prefilter for every field; the glob becomes an anchored regular expression."""
        clauses = []
        if self.repo:
            clauses.append(storage.repo_filter(self.repo))
        if self.language:
            clauses.append(f"language = {storage.sql_string(self.language)}")
        if self.kind:
            clauses.append(f"kind = {storage.sql_string(self.kind)}")
        if self.path_glob:
            clauses.append(
                f"regexp_like(path, {storage.sql_string(glob_to_regex(self.path_glob))})"
            )
        return " AND ".join(clauses) or None

    def accepts_path(self, path: str) -> bool:
        return not self.path_glob or fnmatch.fnmatchcase(path, self.path_glob)

    def accepts(self, row: dict) -> bool:
        return (
            (not self.repo or row["repo"] == self.repo)
            and (not self.language or row["language"] == self.language)
            and (not self.kind or row["kind"] == self.kind)
            and self.accepts_path(row["path"])
        )


_REGEX_SPECIAL = set("\\.+*?()|[]{}^$#&-~")


def glob_to_regex(glob: str) -> str:
    """A glob (fnmatch rules: `*` crosses `/`) as an anchored regex for the SQL filter."""
    out, i = ["^"], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and _class_end(glob, i) > 0:
            end = _class_end(glob, i)
            body = glob[i + 1 : end]
            neg = body.startswith("!")
            body = body[1:] if neg else body
            body = "".join("\\" + ch if ch in "\\[]^" else ch for ch in body)
            out.append("[" + ("^" if neg else "") + body + "]")
            i = end
        else:
            out.append("\\" + c if c in _REGEX_SPECIAL else c)
        i += 1
    out.append("$")
    return "".join(out)


def _class_end(glob: str, start: int) -> int:
    """Index of the `]` closing a glob character class opened at `start`, or -1."""
    j = start + 1
    if j < len(glob) and glob[j] == "!":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    return glob.find("]", j)


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
    parts: int = 1  # >1: the chunks of one long function, reported as one result

    def snippet(self, lines: int = 3) -> str:
        body = [line for line in self.content.split("\n") if line.strip()]
        return "\n".join(body[:lines])

    def location(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}"

    def to_dict(self) -> dict:
        return {**asdict(self), "location": self.location(), "snippet": self.snippet()}


class IndexModelMismatch(RuntimeError):
    """The index was built with another model than the one asked to search it."""


class _OpenIndex:
    """One database as a process sees it: tables, models and names cached per table version."""

    def __init__(self, db_uri: str) -> None:
        self.db_uri = db_uri
        self.db = lancedb.connect(db_uri, read_consistency_interval=_CONSISTENCY)
        self._tables: dict[str, object] = {}
        self._catalog: ChunkCatalog | None = None
        self._vector_state: tuple[RowIdMap, set[str]] | None = None
        self._fts_checked_version: int | None = None
        self._lock = threading.Lock()
        self.checked_embedders: dict[tuple, object] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="code-index-text")

    def table(self, name: str):
        if name not in self._tables:
            if name not in storage.table_names(self.db):
                raise storage.StorageError(
                    f"no index in {self.db_uri}: run `code-index index PATH` first"
                )
            self._tables[name] = self.db.open_table(name)
        return self._tables[name]

    def models(self, version: int | None = None) -> set[str]:
        """The models of the vectors table's rows (at `version`, when the caller read it)."""
        if version is None:
            version = self.table(storage.VECTORS).version
        return self._vectors(version)[1]

    def catalog(self) -> ChunkCatalog:
        """The chunk metadata of the current `chunks` version (one version read per call)."""
        table = self.table(storage.CHUNKS)
        version = table.version
        with self._lock:
            if self._catalog is None:
                self._catalog = ChunkCatalog.load(table, version)
            elif self._catalog.version != version:  # the rows that changed, not a full load
                self._catalog = self._catalog.refreshed(table, version)
            return self._catalog

    def vector_rows(self, version: int) -> RowIdMap:
        """Chunk ids by row id of the vectors table at `version` (read once per version)."""
        return self._vectors(version)[0]

    def _vectors(self, version: int) -> tuple[RowIdMap, set[str]]:
        """The row-id map and the models of the vectors table, from one scan per version;
        the map follows the table by the row ids that came and went (`RowIdMap.refreshed`)."""
        with self._lock:
            if self._vector_state is None or self._vector_state[0].version != version:
                table = self.table(storage.VECTORS)
                arrow = (
                    table.search()
                    .select(["chunk_id", "model"])
                    .with_row_id(True)
                    .limit(None)
                    .to_arrow()
                )
                if self._vector_state is None:
                    rows = RowIdMap.from_arrow(arrow, version)
                else:
                    rows = self._vector_state[0].refreshed_from(arrow, version)
                self._vector_state = (rows, set(pc.unique(arrow.column("model")).to_pylist()))
            return self._vector_state

    def ensure_fts(self, version: int) -> None:
        """Full-text indexes come from the index assets; a bare CLI index gets them once here.

        `version` is the `chunks` version the query already read, so the check costs nothing
        until the table changes.
        """
        if self._fts_checked_version == version:
            return
        if not search_index.fts_ready(self.table(storage.CHUNKS)):
            search_index.build_fts_indexes(self.db_uri)
        self._fts_checked_version = version


_OPEN: dict[str, _OpenIndex] = {}


def open_index(db_uri: str) -> _OpenIndex:
    """The process-wide view of a database (opened once, refreshed by table version)."""
    if db_uri not in _OPEN:
        _OPEN[db_uri] = _OpenIndex(db_uri)
    return _OPEN[db_uri]


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
    index: _OpenIndex, model: str | None, embedder, version: int, options: QueryEncoderOptions
):
    models = index.models(version)
    if embedder is None:
        wanted = model or (next(iter(models)) if len(models) == 1 else None)
        if wanted is None:
            raise IndexModelMismatch(
                f"the index holds vectors of models {sorted(models) or 'none'}: name one with --model"
            )
        embedder = load_query_encoder(wanted, options)
    if models and embedder.model_name not in models:
        raise IndexModelMismatch(
            f"index was built with {sorted(models)}, not {embedder.model_name!r}: search with the same model"
        )
    dim = storage.vector_dim(index.table(storage.VECTORS))
    if dim != embedder.dim:
        raise IndexModelMismatch(
            f"index vectors have {dim} dimensions, model {embedder.model_name!r} makes {embedder.dim}"
        )
    return embedder


def search(
    db_uri: str,
    query: str,
    k: int = 10,
    mode: str = "hybrid",
    filters: SearchFilters = SearchFilters(),
    model: str | None = None,
    min_score: float | None = None,
    embedder=None,
    query_options: QueryEncoderOptions = DEFAULT_OPTIONS,
) -> list[SearchHit]:
    """The k best chunks for a query.

    Scores: cosine similarity (vector), BM25 (text), or fused reciprocal rank scaled to 0-1
    (hybrid: 1.0 means first in every ranking), so `min_score` means the same within a mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if not query.strip():
        raise ValueError("empty query")
    index = open_index(db_uri)
    catalog = index.catalog()  # one `chunks` version for the whole query
    fetch = max(k * _OVERFETCH, _MIN_FETCH)
    ranked: dict[str, list[tuple[str, float]]] = {}
    kind = query_kind(query)
    if mode == "hybrid":
        # The lexical rankings run on a worker thread while the query is embedded and the
        # vector index searched (torch and LanceDB release the GIL).
        lexical = index.pool.submit(_lexical_rankings, index, catalog, query, fetch, filters, kind)
        ranked["vector"] = _vector_ranking(
            index, query, fetch, filters, model, embedder, query_options
        )
        ranked.update(lexical.result())
        scores = fuse(ranked, kind)
    elif mode == "vector":
        ranked["vector"] = _vector_ranking(
            index, query, fetch, filters, model, embedder, query_options
        )
        scores = dict(ranked["vector"])
    else:
        scores = dict(_text_ranking(index, catalog, query, fetch, filters))
    ordered = sorted(scores, key=lambda cid: -scores[cid])
    if min_score is not None:
        ordered = [cid for cid in ordered if scores[cid] >= min_score]
    return _load_hits(index, catalog, catalog.groups.collapse(ordered), scores, filters, k)


def _lexical_rankings(
    index: _OpenIndex, catalog: ChunkCatalog, query, fetch, filters, kind
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


def _vector_ranking(
    index: _OpenIndex, query, fetch, filters, model, embedder, options: QueryEncoderOptions
) -> list[tuple[str, float]]:
    table = index.table(storage.VECTORS)
    version = table.version  # read once: the model check and the row-id map share it
    embedder = query_embedder(index.db_uri, model, embedder, version, options)
    rows_map = index.vector_rows(version)
    encode_query = getattr(embedder, "encode_query", None)
    vector = encode_query(query) if encode_query is not None else embedder.encode([query])[0]
    q = table.search(vector, vector_column_name="vector").distance_type("cosine").limit(fetch)
    where = filters.where()
    if where:
        q = q.where(where, prefilter=True)
    rows = q.select(["_distance"]).with_row_id(True).to_arrow()
    ids = rows_map.chunk_ids(table, rows.column(ROW_ID).to_pylist())
    distances = rows.column("_distance").to_pylist()
    return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances) if cid is not None]


def _text_ranking(
    index: _OpenIndex, catalog: ChunkCatalog, query, fetch, filters
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


def _load_hits(
    index: _OpenIndex,
    catalog: ChunkCatalog,
    picked: list[tuple[str, int | None]],
    scores: dict[str, float],
    filters: SearchFilters,
    k: int,
) -> list[SearchHit]:
    """The first k picks that pass the path glob, as hits; a part of a long function stands
    for the whole function.

    Locations and names come from the catalog, so only the content of the chosen hits is
    read (by row id). A chunk the catalog lacks (written after it was loaded) is read whole.
    """
    table = index.table(storage.CHUNKS)
    hits: list[SearchHit] = []
    start = 0
    while len(hits) < k and start < len(picked):
        window = picked[start : start + max(k - len(hits), 1) * 2]
        start += len(window)
        meta = {cid: catalog.meta(cid) for cid, _ in window}
        unknown = [cid for cid, row in meta.items() if row is None]
        if unknown:
            rows = storage.read_rows(
                table, storage.id_list_filter("chunk_id", unknown), _HIT_COLUMNS
            )
            meta.update({row["chunk_id"]: row for row in rows.to_pylist()})
        chosen = [
            (cid, group)
            for cid, group in window
            if meta.get(cid) and filters.accepts_path(meta[cid]["path"])
        ]
        chosen = chosen[: k - len(hits)]
        members = [
            m
            for cid, group in chosen
            for m in (catalog.groups.members[group] if group is not None else [cid])
        ]
        contents = catalog.contents(table, [m for m in members if m in catalog.row_of])
        contents.update(
            {cid: row["content"] for cid, row in meta.items() if row and "content" in row}
        )
        for cid, group in chosen:
            if cid not in contents:
                continue  # deleted since the catalog was loaded
            hit = SearchHit(score=scores[cid], **{**meta[cid], "content": contents[cid]})
            if group is not None:
                parts = [m for m in catalog.groups.members[group] if m in contents]
                hit.start_line, hit.end_line = catalog.groups.spans[group]
                hit.content = "\n".join(contents[m] for m in parts)
                hit.parts = len(parts)
            hits.append(hit)
    return hits


def get_chunk(db_uri: str, chunk_id: str) -> dict | None:
    """One chunk with its parent and its children (the hierarchy kept in `parent_id`)."""
    table = open_index(db_uri).table(storage.CHUNKS)
    columns = _HIT_COLUMNS + ["scope"]
    found = storage.read_rows(
        table, storage.id_list_filter("chunk_id", [chunk_id]), columns
    ).to_pylist()
    if not found:
        return None
    chunk = found[0]
    parent = None
    if chunk["parent_id"]:
        rows = storage.read_rows(
            table, storage.id_list_filter("chunk_id", [chunk["parent_id"]]), columns
        ).to_pylist()
        parent = rows[0] if rows else None
    children = storage.read_rows(
        table, storage.id_list_filter("parent_id", [chunk_id]), columns
    ).to_pylist()
    children.sort(key=lambda r: (r["start_line"], r["end_line"]))
    brief = ["chunk_id", "path", "start_line", "end_line", "kind", "name"]
    return {
        **chunk,
        "parent": parent,
        "children": [{c: child[c] for c in brief} for child in children],
    }
