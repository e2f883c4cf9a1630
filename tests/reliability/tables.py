"""Reading an index back as plain sets, and the invariants every test of this package asserts."""

from __future__ import annotations

from collections import Counter

import numpy as np

from indexer_core.storage import tables as storage


def chunk_set(db_uri: str) -> set[tuple]:
    """(repo, path, start_line, end_line, content) of every chunk: what a clean run must equal."""
    table = storage.connect(db_uri).open_table(storage.CHUNKS)
    rows = storage.read_rows(
        table, None, ["repo", "path", "start_line", "end_line", "content"]
    ).to_pylist()
    return {(r["repo"], r["path"], r["start_line"], r["end_line"], r["content"]) for r in rows}


def vectors_by_chunk(db_uri: str) -> dict[str, bytes]:
    """Vector bytes by chunk id (a hash of repo, path, position, lines and embedded text)."""
    table = storage.connect(db_uri).open_table(storage.VECTORS)
    rows = storage.read_rows(table, None, ["chunk_id", "vector"]).to_pylist()
    return {r["chunk_id"]: np.asarray(r["vector"], np.float32).tobytes() for r in rows}


def manifest(db_uri: str) -> dict[str, tuple[str, str]]:
    table = storage.connect(db_uri).open_table(storage.FILES)
    rows = storage.read_rows(table, None, ["path", "status", "reason"]).to_pylist()
    return {r["path"]: (r["status"], r["reason"]) for r in rows}


def assert_clean(db_uri: str) -> None:
    """No duplicate chunk id, no orphan vector, no chunk without its vector."""
    db = storage.connect(db_uri)
    chunk_ids = (
        storage.read_rows(db.open_table(storage.CHUNKS), None, ["chunk_id"])
        .column("chunk_id")
        .to_pylist()
    )
    vector_ids = (
        storage.read_rows(db.open_table(storage.VECTORS), None, ["chunk_id"])
        .column("chunk_id")
        .to_pylist()
    )
    dupes = [c for c, n in Counter(chunk_ids).items() if n > 1]
    vdupes = [c for c, n in Counter(vector_ids).items() if n > 1]
    assert not dupes, f"duplicate chunk ids: {dupes[:5]}"
    assert not vdupes, f"duplicate vector ids: {vdupes[:5]}"
    missing = set(chunk_ids) - set(vector_ids)
    orphans = set(vector_ids) - set(chunk_ids)
    assert not missing, f"{len(missing)} chunks without a vector"
    assert not orphans, f"{len(orphans)} vectors without a chunk"
    files = (
        storage.read_rows(db.open_table(storage.FILES), None, ["path"]).column("path").to_pylist()
    )
    assert len(files) == len(set(files)), "duplicate manifest rows"


def snapshot(db_uri: str) -> tuple[set[tuple], dict[str, bytes], dict[str, tuple[str, str]]]:
    return chunk_set(db_uri), vectors_by_chunk(db_uri), manifest(db_uri)
