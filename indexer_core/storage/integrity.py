"""Invariants of the tables, checked after each run: one vector per chunk, sane vectors, unique
ids.

Each check takes an optional open connection (`db`): checks run one after another on one
connection read the id columns once, the later ones from LanceDB's cache (on an object
store, GETs saved)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from indexer_core.storage import tables as storage

_SCAN_BATCH = 65_536


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    description: str
    examples: list[str] = field(default_factory=list)
    count: int = 0


def _ids(db, table: str, repo: str | None) -> list[str]:
    if table not in storage.table_names(db):
        return []
    where = storage.repo_filter(repo) if repo else None
    return (
        storage.read_rows(db.open_table(table), where, ["chunk_id"]).column("chunk_id").to_pylist()
    )


def check_unique_chunk_ids(
    db_uri: str, repo: str | None = None, db: storage.lancedb.DBConnection | None = None
) -> CheckOutcome:
    db = db if db is not None else storage.connect(db_uri)
    dupes = [cid for cid, n in Counter(_ids(db, storage.CHUNKS, repo)).items() if n > 1]
    dupes += [
        f"vector {cid}" for cid, n in Counter(_ids(db, storage.VECTORS, repo)).items() if n > 1
    ]
    return CheckOutcome(
        "unique_chunk_ids",
        not dupes,
        f"{len(dupes)} duplicated chunk ids in chunks or vectors"
        if dupes
        else "no duplicate chunk ids",
        dupes[:20],
        len(dupes),
    )


def check_one_vector_per_chunk(
    db_uri: str, repo: str | None = None, db: storage.lancedb.DBConnection | None = None
) -> CheckOutcome:
    db = db if db is not None else storage.connect(db_uri)
    chunks = set(_ids(db, storage.CHUNKS, repo))
    vectors = set(_ids(db, storage.VECTORS, repo))
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
) -> CheckOutcome:
    """Every vector has the model's dimension and is finite and non-zero."""
    db = db if db is not None else storage.connect(db_uri)
    if storage.VECTORS not in storage.table_names(db):
        return CheckOutcome("vectors_sane", True, "no vectors table yet")
    table = db.open_table(storage.VECTORS)
    dim = storage.vector_dim(table)
    if expected_dim is not None and dim != expected_dim:
        return CheckOutcome(
            "vectors_sane",
            False,
            f"vectors have {dim} dimensions, the model makes {expected_dim}",
            count=1,
        )
    bad: list[str] = []
    where = storage.repo_filter(repo) if repo else None
    rows = storage.read_rows(table, where, ["chunk_id", "vector"])
    for batch in rows.to_batches(_SCAN_BATCH):
        ids = batch.column(0).to_pylist()
        flat = batch.column(1).flatten().to_numpy(zero_copy_only=False)
        matrix = flat.reshape(len(ids), dim) if len(ids) else np.zeros((0, dim))
        finite = np.isfinite(matrix).all(axis=1)
        nonzero = np.abs(np.nan_to_num(matrix)).sum(axis=1) > 0
        bad += [cid for cid, ok in zip(ids, finite & nonzero) if not ok]
    return CheckOutcome(
        "vectors_sane",
        not bad,
        f"{len(bad)} vectors are NaN, infinite or all zero"
        if bad
        else f"all vectors finite, non-zero, {dim}-dimensional",
        bad[:20],
        len(bad),
    )
