"""Incremental == from scratch after any sequence of edits, adds, deletes and renames."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import tables as storage

SETTINGS = IndexSettings(shards=3)
NAMES = ["a.py", "b.py", "pkg/c.py", "pkg/d.js", "it's e.py", "f.md"]
BODIES = [
    "def alpha():\n    return 1\n",
    "class Beta:\n    def run(self):\n        return 'b'\n",
    "import os\n\n\ndef gamma(x):\n    return os.path.join(x, 'g')\n",
    "function delta(a) {\n  return a + 1;\n}\n",
    "# Title\n\nSome words.\n",
    "",
]

operation = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.sampled_from(BODIES)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just("")),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
)


def _apply(root: Path, op: tuple[str, str, str]) -> None:
    kind, name, arg = op
    path = root / name
    if kind == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(arg)
    elif kind == "delete" and path.exists():
        path.unlink()
    elif kind == "rename" and path.exists() and arg != name:
        target = root / arg
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)


def _index(db_uri: str, root: Path, embedder) -> None:
    for shard in range(SETTINGS.shards):
        chunk_partition(db_uri, "repo", str(root), shard, SETTINGS)
        embed_partition(db_uri, "repo", shard, embedder)


def _snapshot(db_uri: str) -> tuple[set, dict]:
    db = storage.connect(db_uri)
    chunks = db.open_table(storage.CHUNKS).to_arrow()
    rows = set(
        zip(*(chunks.column(c).to_pylist() for c in ("path", "start_line", "end_line", "content")))
    )
    vectors: pa.Table = db.open_table(storage.VECTORS).to_arrow()
    by_id = dict(
        zip(
            vectors.column("chunk_id").to_pylist(), np.asarray(vectors.column("vector").to_pylist())
        )
    )
    assert len(by_id) == vectors.num_rows, "duplicate chunk ids in vectors"
    assert set(by_id) == set(chunks.column("chunk_id").to_pylist()), "chunks and vectors disagree"
    return rows, by_id


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=3))
def test_incremental_equals_from_scratch(embedder, steps) -> None:
    work = Path(tempfile.mkdtemp(prefix="incr-"))
    try:
        root = work / "repo"
        root.mkdir()
        (root / "a.py").write_text(BODIES[0])
        incremental = str(work / "incremental")
        _index(incremental, root, embedder)
        for n, batch in enumerate(steps):
            for op in batch:
                _apply(root, op)
            _index(incremental, root, embedder)
            scratch = str(work / f"scratch{n}")
            _index(scratch, root, embedder)
            rows, vectors = _snapshot(incremental)
            expected_rows, expected_vectors = _snapshot(scratch)
            assert rows == expected_rows
            assert vectors.keys() == expected_vectors.keys()
            for chunk_id, vector in vectors.items():  # batch composition moves the last float bits
                assert np.allclose(vector, expected_vectors[chunk_id], atol=1e-4), chunk_id
    finally:
        shutil.rmtree(work, ignore_errors=True)
