"""Writing: rows/s of the production writes (`storage.replace_rows`, one merge_insert commit)
against a plain LanceDB append of the same Arrow table, in the same run."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from indexer_core.chunking.files import chunks_to_arrow
from indexer_core.records import Chunk
from indexer_core.storage import tables as storage


def _vectors(chunks: list[Chunk], dim: int) -> pa.Table:
    rng = np.random.default_rng(0)
    flat = rng.standard_normal(len(chunks) * dim, dtype=np.float32)
    return pa.table(
        {
            "chunk_id": [c.chunk_id for c in chunks],
            "repo": [c.repo for c in chunks],
            "path": [c.path for c in chunks],
            "file_id": [c.file_id for c in chunks],
            "shard": pa.array([c.shard for c in chunks], pa.int32()),
            "language": [c.language for c in chunks],
            "kind": [c.kind for c in chunks],
            "start_line": pa.array([c.start_line for c in chunks], pa.int32()),
            "end_line": pa.array([c.end_line for c in chunks], pa.int32()),
            "content_hash": [c.content_hash for c in chunks],
            "model": ["bench"] * len(chunks),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat), dim),
        }
    )


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(chunks: list[Chunk], dim: int = 384) -> dict[str, object]:
    rows = chunks_to_arrow(chunks)
    vectors = _vectors(chunks, dim)
    n = rows.num_rows
    out: dict[str, object] = {
        "rows": n,
        "chunk_table_mb": round(rows.nbytes / 1e6, 2),
        "vector_table_mb": round(vectors.nbytes / 1e6, 2),
    }
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        db = storage.connect(str(Path(tmp) / "db"))
        plain = db.create_table("plain", schema=storage.CHUNKS_SCHEMA)
        out["append_chunks_s"] = round(_timed(lambda: plain.add(rows)), 3)
        chunks_table = storage.open_or_create(db, storage.CHUNKS, storage.CHUNKS_SCHEMA)
        where = storage.partition_filter("bench", 0)
        out["replace_chunks_new_s"] = round(
            _timed(lambda: storage.replace_rows(chunks_table, "chunk_id", rows, where)), 3
        )
        out["replace_chunks_again_s"] = round(
            _timed(lambda: storage.replace_rows(chunks_table, "chunk_id", rows, where)), 3
        )
        vectors_table = storage.open_vectors(db, dim)
        out["replace_vectors_new_s"] = round(
            _timed(lambda: storage.replace_rows(vectors_table, "chunk_id", vectors, None)), 3
        )
        plain_v = db.create_table("plain_vectors", schema=storage.vectors_schema(dim))
        out["append_vectors_s"] = round(_timed(lambda: plain_v.add(vectors)), 3)
    out["summary"] = {
        "append_chunk_rows_per_s": round(n / out["append_chunks_s"], 1),
        "replace_chunk_rows_per_s": round(n / out["replace_chunks_new_s"], 1),
        "rerun_chunk_rows_per_s": round(n / out["replace_chunks_again_s"], 1),
        "append_vector_rows_per_s": round(n / out["append_vectors_s"], 1),
        "replace_vector_rows_per_s": round(n / out["replace_vectors_new_s"], 1),
        "replace_over_append_time": round(out["replace_chunks_new_s"] / out["append_chunks_s"], 2),
    }
    return out
