"""Invariants of the tables, checked after each run: one vector per chunk, sane vectors, unique
ids.

`check_all` reads each table once for the three checks (on an object store, each scan is a
GET per fragment); each check alone reads what it needs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa

from indexer_core.storage import tables as storage

_SCAN_BATCH = 65_536


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    description: str
    examples: list[str] = field(default_factory=list)
    count: int = 0


@dataclass
class TableContents:
    """What the checks read: every chunk id, and every vector with its chunk id. Read once
    (`read_contents`) for all three checks, so an object store serves each table once."""

    chunk_ids: list[str]
    vector_ids: list[str]
    vectors: pa.ChunkedArray | pa.FixedSizeListArray | None  # None: not read (or no table)
    dim: int = 0
    vectors_table: bool = True  # False: there is no vectors table yet

    @cached_property
    def chunk_set(self) -> set[str]:
        """The distinct chunk ids: built once for the checks that compare and count them."""
        return set(self.chunk_ids)

    @cached_property
    def vector_set(self) -> set[str]:
        return set(self.vector_ids)


def read_contents(
    db_uri: str,
    repo: str | None = None,
    db: storage.lancedb.DBConnection | None = None,
    vectors: bool = True,
) -> TableContents:
    """The chunk ids, vector ids and (with `vectors`) the vectors themselves, of one
    repository or of all; one open and one scan per table."""
    db = db if db is not None else storage.connect(db_uri)
    where = storage.repo_filter(repo) if repo else None
    chunks = storage.open_existing(db, storage.CHUNKS)
    table = storage.open_existing(db, storage.VECTORS)
    # The two scans run at once (LanceDB reads without the GIL): the vectors' scan is most
    # of an end-of-run check, and the chunk ids' alone was a fifth of it on top.
    with ThreadPoolExecutor(1, thread_name_prefix="chunk-ids") as pool:
        chunk_rows = pool.submit(
            lambda: storage.read_rows(chunks, where, ["chunk_id"]) if chunks is not None else None
        )
        columns = ["chunk_id", "vector"] if vectors else ["chunk_id"]
        rows = storage.read_rows(table, where, columns) if table is not None else None
        read = chunk_rows.result()
    chunk_ids = read.column("chunk_id").to_pylist() if read is not None else []
    if table is None or rows is None:
        return TableContents(chunk_ids, [], None, vectors_table=False)
    column = rows.column("vector") if vectors else None  # as read: no copy into one array
    return TableContents(
        chunk_ids, rows.column("chunk_id").to_pylist(), column, storage.vector_dim(table)
    )


def check_unique_chunk_ids(
    db_uri: str,
    repo: str | None = None,
    db: storage.lancedb.DBConnection | None = None,
    contents: TableContents | None = None,
) -> CheckOutcome:
    contents = contents or read_contents(db_uri, repo, db, vectors=False)
    dupes = _repeated(contents.chunk_ids, contents.chunk_set)
    dupes += [f"vector {cid}" for cid in _repeated(contents.vector_ids, contents.vector_set)]
    return CheckOutcome(
        "unique_chunk_ids",
        not dupes,
        f"{len(dupes)} duplicated chunk ids in chunks or vectors"
        if dupes
        else "no duplicate chunk ids",
        dupes[:20],
        len(dupes),
    )


def _repeated(ids: list[str], distinct: set[str]) -> list[str]:
    """The ids listed more than once: counted only when the distinct ones are fewer, so a
    table without duplicates (every healthy one) costs no count."""
    if len(distinct) == len(ids):
        return []
    return [cid for cid, n in Counter(ids).items() if n > 1]


def check_one_vector_per_chunk(
    db_uri: str,
    repo: str | None = None,
    db: storage.lancedb.DBConnection | None = None,
    contents: TableContents | None = None,
) -> CheckOutcome:
    contents = contents or read_contents(db_uri, repo, db, vectors=False)
    chunks = contents.chunk_set
    vectors = contents.vector_set
    missing = sorted(chunks - vectors)
    orphans = sorted(vectors - chunks)
    passed = not missing and not orphans
    return CheckOutcome(
        "one_vector_per_chunk",
        passed,
        f"{len(missing)} chunks without a vector, {len(orphans)} vectors without a chunk",
        [f"missing vector: {c}" for c in missing[:10]]
        + [f"orphan vector: {c}" for c in orphans[:10]],
        len(missing) + len(orphans),
    )


def check_vectors_sane(
    db_uri: str,
    expected_dim: int | None = None,
    repo: str | None = None,
    db: storage.lancedb.DBConnection | None = None,
    contents: TableContents | None = None,
) -> CheckOutcome:
    """Every vector has the model's dimension and is finite and non-zero."""
    if contents is None or contents.vectors is None and contents.vectors_table:
        contents = read_contents(db_uri, repo, db)
    if not contents.vectors_table:
        return CheckOutcome("vectors_sane", True, "no vectors table yet")
    dim = contents.dim
    if expected_dim is not None and dim != expected_dim:
        return CheckOutcome(
            "vectors_sane",
            False,
            f"vectors have {dim} dimensions, the model makes {expected_dim}",
            count=1,
        )
    bad: list[str] = []
    ids = contents.vector_ids
    for offset, batch in _batches(contents.vectors):
        flat = batch.flatten().to_numpy(zero_copy_only=False)
        matrix = flat.reshape(len(batch), dim)
        # No copies of the batch (a large index's end-of-run check reads every vector): NaN
        # compares unequal to 0, and the finite test catches it.
        sane = np.isfinite(matrix).all(axis=1) & (matrix != 0).any(axis=1)
        bad += [ids[offset + i] for i in np.flatnonzero(~sane)]
    return CheckOutcome(
        "vectors_sane",
        not bad,
        f"{len(bad)} vectors are NaN, infinite or all zero"
        if bad
        else f"all vectors finite, non-zero, {dim}-dimensional",
        bad[:20],
        len(bad),
    )


def _batches(
    vectors: pa.ChunkedArray | pa.FixedSizeListArray,
) -> Iterator[tuple[int, pa.FixedSizeListArray]]:
    """(row offset, slice) of at most _SCAN_BATCH vectors each, in order, without copying:
    slices of the arrays as they were read."""
    arrays = vectors.chunks if isinstance(vectors, pa.ChunkedArray) else [vectors]
    offset = 0
    for array in arrays:
        for start in range(0, len(array), _SCAN_BATCH):
            batch = array.slice(start, _SCAN_BATCH)
            yield offset + start, batch
        offset += len(array)


def check_all(
    db_uri: str,
    expected_dim: int | None = None,
    repo: str | None = None,
    db: storage.lancedb.DBConnection | None = None,
) -> list[CheckOutcome]:
    """The three checks over one read of each table: one vector per chunk, sane vectors,
    unique ids."""
    contents = read_contents(db_uri, repo, db)
    return [
        check_one_vector_per_chunk(db_uri, contents=contents),
        check_vectors_sane(db_uri, expected_dim, contents=contents),
        check_unique_chunk_ids(db_uri, contents=contents),
    ]
