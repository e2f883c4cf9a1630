"""LanceDB tables, their schemas, and the idempotent one-commit writes that keep them in step.

Tables in one database (a directory or any URI LanceDB accepts):
- `files`: the manifest, one row per file seen (indexed or skipped, with its reason);
- `chunks`: one row per chunk;
- `vectors`: one embedding per chunk;
- `embedding_cache`: vectors keyed by (hash of the embedded text, model), kept across deletes.

Every write that replaces a set of files' rows is a single `merge_insert` commit whose
"not matched by source" clause deletes the rows those files no longer have, so a reader never
sees a gap and a rerun after a crash converges. Filters are built only from hex ids and
validated repository names, so no file name can break or widen a delete.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import pyarrow as pa

from indexer_core.storage.lancedb_import import import_lancedb

if TYPE_CHECKING:
    import lancedb

FILES = "files"
CHUNKS = "chunks"
VECTORS = "vectors"
EMBEDDING_CACHE = "embedding_cache"

_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEX = re.compile(r"^[0-9a-f]+$")

FILES_SCHEMA = pa.schema(
    [
        ("file_id", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("shard", pa.int32()),
        ("status", pa.string()),  # "indexed" or "skipped"
        ("reason", pa.string()),  # skip reason, empty when indexed
        ("detail", pa.string()),  # skip detail or decoding notes
        ("language", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("file_hash", pa.string()),
        ("chunks", pa.int32()),
        ("chunker", pa.string()),  # chunker settings fingerprint: a change re-chunks
    ]
)

CHUNKS_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("repo", pa.string()),
        ("path", pa.string()),
        ("file_id", pa.string()),
        ("shard", pa.int32()),
        ("language", pa.string()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("scope", pa.string()),
        ("parent_id", pa.string()),
        ("start_line", pa.int32()),
        ("end_line", pa.int32()),
        # A unit too long for one chunk is stored as parts 1..parts of one name and parent.
        ("part", pa.int32()),
        ("parts", pa.int32()),
        ("content", pa.string()),
        ("embed_text", pa.string()),
        # What full-text search indexes: path, scope, name and content, camelCase split
        # into words (names.search_text). Added to older tables by `open_chunks`.
        ("search_text", pa.string()),
        ("file_hash", pa.string()),
        ("content_hash", pa.string()),
    ]
)


def vectors_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("chunk_id", pa.string()),
            ("repo", pa.string()),
            ("path", pa.string()),
            ("file_id", pa.string()),
            ("shard", pa.int32()),
            ("language", pa.string()),
            ("kind", pa.string()),
            ("start_line", pa.int32()),
            ("end_line", pa.int32()),
            ("content_hash", pa.string()),
            ("model", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def cache_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("cache_key", pa.string()),
            ("content_hash", pa.string()),
            ("model", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


class StorageError(RuntimeError):
    """A table is missing, or holds data that does not match what is asked of it."""


# ---------------------------------------------------------------- safe filters


def check_repo_name(repo: str) -> str:
    """Repository names become partition keys and filter literals: letters, digits, _ . -"""
    if not _REPO_NAME.match(repo):
        raise ValueError(
            f"repository name {repo!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
        )
    return repo


def sql_string(value: str) -> str:
    """A SQL string literal for any text: single quotes doubled, nothing else special."""
    return "'" + value.replace("'", "''") + "'"


def repo_filter(repo: str) -> str:
    return f"repo = {sql_string(check_repo_name(repo))}"


def partition_filter(repo: str, shard: int) -> str:
    return f"{repo_filter(repo)} AND shard = {int(shard)}"


def id_list_filter(column: str, ids: Iterable[str]) -> str:
    """`column IN (...)` over hex ids only; anything else is refused, not escaped."""
    values = sorted(set(ids))
    for value in values:
        if not _HEX.match(value):
            raise ValueError(f"not a hex id: {value!r}")
    return f"{column} IN ({', '.join(sql_string(v) for v in values)})"


# ---------------------------------------------------------------- connection and tables


_storage_options: dict[str, str] = {}


def use_storage_options(options: Mapping[str, str] | None) -> None:
    """Set the storage options (endpoint, region, credentials, `allow_http`) every later
    `connect` to an object store passes to LanceDB in this process. The code location sets
    them from its configuration once per process; LanceDB still reads `AWS_*` itself."""
    _storage_options.clear()
    _storage_options.update(options or {})


def storage_options_for(uri: str) -> dict[str, str] | None:
    """The options for `uri`: those set by `use_storage_options`, for object stores only."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme in ("", "file") or not _storage_options:
        return None
    return dict(_storage_options)


def connect(uri: str, **kwargs) -> lancedb.DBConnection:
    """Open a database; object-store URIs get the process's storage options."""
    options = storage_options_for(uri)
    if options:
        kwargs.setdefault("storage_options", options)
    return import_lancedb().connect(uri, **kwargs)


# The metadata cache of a connection kept across partitions (`kept_connection`). The slice of
# bench.cluster (32 partitions) fills about 0.6 MB; housekeeping keeps tables under about a
# hundred fragments, so this holds a large table's and bounds a long step's memory.
KEPT_CACHE_BYTES = 64 * 1024 * 1024


def kept_connection(uri: str) -> lancedb.DBConnection:
    """A connection for a step to keep across its partitions, with a bounded cache.

    LanceDB caches what a connection has read of each (immutable) data file, so a step that
    reads a table once per partition through one connection fetches only the fragments
    written since its last read: on an object store, a GET per new fragment instead of one
    per fragment. The cache is capped (KEPT_CACHE_BYTES), so a step's memory still follows
    its partition, not the table.
    """
    session = import_lancedb().Session(metadata_cache_size_bytes=KEPT_CACHE_BYTES)
    return connect(uri, session=session)


def table_uri(db_uri: str, table: str) -> str:
    """Where a table lives: `<database>/<table>.lance` (a path or any URI LanceDB accepts)."""
    return f"{db_uri.rstrip('/')}/{table}.lance"


def table_names(db: lancedb.DBConnection) -> set[str]:
    listing = db.list_tables()
    names = getattr(listing, "tables", listing)
    return set(names)


_OPEN_ATTEMPTS = 25  # about 6 s in all: a table another process is creating right now


def open_or_create(db: lancedb.DBConnection, name: str, schema: pa.Schema) -> lancedb.table.Table:
    """Open a table, creating it empty on first use; safe when several processes race.

    It opens first and lists the database only when that fails: on an object store a
    listing is a LIST request, paid by every step and partition that opens a table. A table
    another process is creating is listed (its directory exists) before its first version is
    written, and opening it then fails ("Table 'chunks' was not found"): that is waited
    out, briefly, before the error is believed.
    """
    for attempt in range(_OPEN_ATTEMPTS):
        table = open_existing(db, name)
        if table is not None:
            return table
        try:
            if name not in table_names(db):
                return db.create_table(name, schema=schema, exist_ok=True)
        except (ValueError, OSError, RuntimeError):
            pass
        time.sleep(min(0.4, 0.02 * (attempt + 1)))
    return db.open_table(name)


def open_existing(db: lancedb.DBConnection, name: str) -> lancedb.table.Table | None:
    """The table, or None where it does not exist (yet): one open, no listing."""
    try:
        return db.open_table(name)
    except (ValueError, OSError, RuntimeError):
        return None


# Columns added to `chunks` since its first release, with the SQL that fills them in rows
# written before (until the next index run rewrites those rows).
_CHUNKS_ADDED = {
    "search_text": "concat_ws(' ', path, scope, name, content)",
    "part": "CAST(1 AS INT)",
    "parts": "CAST(1 AS INT)",
}


def open_chunks(db: lancedb.DBConnection) -> lancedb.table.Table:
    """The chunks table, with any column a table made by an older version lacks added."""
    table = open_or_create(db, CHUNKS, CHUNKS_SCHEMA)
    missing = {c: sql for c, sql in _CHUNKS_ADDED.items() if c not in table.schema.names}
    if missing:
        try:
            with_commit_retry(lambda: table.add_columns(missing), table=table)
        except (ValueError, OSError, RuntimeError):
            table.checkout_latest()  # another process added them first
            if any(c not in table.schema.names for c in missing):
                raise
    return table


def vector_dim(table: lancedb.table.Table) -> int:
    return table.schema.field("vector").type.list_size


def open_vectors(db: lancedb.DBConnection, dim: int) -> lancedb.table.Table:
    """The vectors table for this dimension.

    A table of another dimension was made by another model; its vectors cannot serve this
    one, so it is replaced and every partition re-embeds (the chunks stay).
    """
    table = open_or_create(db, VECTORS, vectors_schema(dim))
    if vector_dim(table) != dim:
        db.drop_table(VECTORS)
        table = open_or_create(db, VECTORS, vectors_schema(dim))
    return table


def open_cache(db: lancedb.DBConnection, dim: int) -> lancedb.table.Table:
    """The embedding cache for this dimension; a cache of another dimension is replaced."""
    table = open_or_create(db, EMBEDDING_CACHE, cache_schema(dim))
    if vector_dim(table) != dim:
        db.drop_table(EMBEDDING_CACHE)
        table = open_or_create(db, EMBEDDING_CACHE, cache_schema(dim))
    return table


# ---------------------------------------------------------------- reads


ROW_ID = "_rowid"


def read_rows(
    table: lancedb.table.Table,
    where: str | None,
    columns: Sequence[str] | None = None,
    row_ids: bool = False,
) -> pa.Table:
    """All rows matching a filter (no vector search), as Arrow; with `row_ids`, each row's
    id in the column `ROW_ID`, for `take_rows` on the same table handle."""
    query = table.search()
    if where:
        query = query.where(where)
    if columns:
        query = query.select(list(columns))
    if row_ids:
        query = query.with_row_id(True)
    return query.limit(None).to_arrow()


def take_rows(
    table: lancedb.table.Table, row_ids: Sequence[int], columns: Sequence[str]
) -> pa.Table:
    """The rows with these ids (from `read_rows(..., row_ids=True)` on this same handle), in
    that order, with `columns`.

    A filtered scan reads the pages of every column it returns from every fragment, rows
    matched or not: on an object store, wide text columns cost a GET per fragment per scan
    even when nothing matches. So a reader filters on narrow columns (which a kept
    connection mostly serves from its cache) and takes the wide ones for its matches only,
    from the fragments that hold them.
    """
    if not row_ids:
        schema = pa.schema([table.schema.field(c) for c in columns])
        return schema.empty_table()
    taken = table.take_row_ids(list(row_ids)).select(list(columns)).with_row_id().to_arrow()
    position = {row_id: i for i, row_id in enumerate(taken.column(ROW_ID).to_pylist())}
    return taken.select(list(columns)).take([position[row_id] for row_id in row_ids])


def count_matching(table: lancedb.table.Table, where: str, column: str = "shard") -> int:
    """Rows matching a filter, counted by scanning one small column.

    `count_rows(where)` reads every fragment of the table again on each call; a scan goes
    through the connection's cache, so a caller that keeps its connection (a step, across
    its partitions) fetches only the fragments written since its last read: on an object
    store, a GET per new fragment instead of one per fragment.
    """
    return read_rows(table, where, [column]).num_rows


# ---------------------------------------------------------------- writes

T = TypeVar("T")
# What lance 13 (lancedb 0.40) says when a commit loses a race, e.g. "lance error: Retryable
# commit conflict for version 5: This Rewrite transaction was preempted by concurrent
# transaction Delete at version 5. Please retry.", "... is incompatible with concurrent
# transaction ...", "Too many concurrent writers". All are RuntimeError or OSError.
_CONFLICT_WORDS = ("conflict", "retry", "concurrent")


def is_commit_conflict(exc: BaseException) -> bool:
    """True for the errors LanceDB raises when another writer committed first."""
    message = str(exc).lower()
    return isinstance(exc, (RuntimeError, OSError)) and any(w in message for w in _CONFLICT_WORDS)


def with_commit_retry(
    action: Callable[[], T], attempts: int = 8, table: lancedb.table.Table | None = None
) -> T:
    """Run a write, retrying LanceDB commit conflicts with jittered backoff.

    A conflict means the write was planned on a version that another commit has since
    superseded in a way lance cannot rebase onto (a compaction that lost to a delete of the
    same fragment, say). Planning again on the same handle plans on the same old version and
    loses again, so `table`, the handle `action` writes through, is moved to the latest
    version before each retry. Every write here is idempotent, so running it again is safe.
    """
    for attempt in range(attempts):
        try:
            return action()
        except (RuntimeError, OSError) as exc:  # lance raises these, not a class of its own
            if attempt == attempts - 1 or not is_commit_conflict(exc):
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
            if table is not None:
                table.checkout_latest()
    raise AssertionError("unreachable")


def replace_rows(
    table: lancedb.table.Table, key: str, rows: pa.Table, scope_filter: str | None
) -> None:
    """Make the rows matching `scope_filter` equal `rows`, in one commit.

    Rows with a matching key are updated, new keys inserted, and rows in scope whose key is
    not among `rows` deleted (no deletes when `scope_filter` is None). Running it twice
    leaves the same table as running it once.
    """
    rows = rows.select(table.schema.names).cast(table.schema)

    def write() -> None:
        if rows.num_rows == 0:
            if scope_filter:
                table.delete(scope_filter)
            return
        merge = table.merge_insert(key).when_matched_update_all().when_not_matched_insert_all()
        if scope_filter:
            merge = merge.when_not_matched_by_source_delete(scope_filter)
        merge.execute(rows)

    with_commit_retry(write, table=table)


def append_rows(table: lancedb.table.Table, rows: pa.Table) -> None:
    """Add rows in one commit, without looking at what the table holds: the write for rows
    known to be new, whose cost must not grow with the table."""
    if rows.num_rows == 0:
        return
    rows = rows.select(table.schema.names).cast(table.schema)
    with_commit_retry(lambda: table.add(rows), table=table)
