"""Row-id reads behind search: hit content and ranking ids stay right when the table moves on."""

from __future__ import annotations

import pyarrow as pa

from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.row_ids import RowIdMap
from indexer_core.storage import tables as storage


def _chunk(i: int, content: str | None = None) -> dict:
    return {
        "chunk_id": f"{i:016x}",
        "repo": "demo",
        "path": f"pkg/m{i}.py",
        "file_id": f"{i:016x}",
        "shard": 0,
        "language": "python",
        "kind": "function",
        "name": f"fn_{i}",
        "scope": "",
        "parent_id": "",
        "start_line": 1,
        "end_line": 3,
        "content": content or f"def fn_{i}(): pass",
        "embed_text": "",
        "file_hash": "",
        "content_hash": "",
    }


def _table(tmp_path, n: int = 6):
    db = storage.connect(str(tmp_path / "db"))
    table = db.create_table(storage.CHUNKS, schema=storage.CHUNKS_SCHEMA)
    for start in range(0, n, 3):  # several fragments
        table.add(
            pa.Table.from_pylist(
                [_chunk(i) for i in range(start, start + 3)], schema=storage.CHUNKS_SCHEMA
            )
        )
    return table


def test_catalog_holds_hit_metadata_and_reads_content_by_row(tmp_path):
    table = _table(tmp_path)
    catalog = ChunkCatalog.load(table, table.version)
    assert catalog.meta(f"{4:016x}")["path"] == "pkg/m4.py"
    assert catalog.meta("ffff") is None
    assert catalog.contents(table, [f"{i:016x}" for i in (1, 4)]) == {
        f"{1:016x}": "def fn_1(): pass",
        f"{4:016x}": "def fn_4(): pass",
    }


def test_content_of_rows_rewritten_or_deleted_after_the_catalog(tmp_path):
    table = _table(tmp_path)
    catalog = ChunkCatalog.load(table, table.version)
    table.delete(f"chunk_id = '{2:016x}'")
    table.delete(f"chunk_id = '{4:016x}'")
    table.add(
        pa.Table.from_pylist([_chunk(4, "def fn_4(): return 4")], schema=storage.CHUNKS_SCHEMA)
    )
    table.optimize()  # compaction moves every surviving row to new addresses
    got = catalog.contents(table, [f"{i:016x}" for i in (1, 2, 4)])
    assert got == {f"{1:016x}": "def fn_1(): pass", f"{4:016x}": "def fn_4(): return 4"}


def test_row_id_map_reads_rows_it_does_not_know(tmp_path):
    table = _table(tmp_path)
    known = RowIdMap.load(table, table.version)
    table.add(pa.Table.from_pylist([_chunk(9)], schema=storage.CHUNKS_SCHEMA))
    rows = table.search().select(["chunk_id"]).with_row_id(True).limit(None).to_arrow()
    by_id = dict(zip(rows.column("chunk_id").to_pylist(), rows.column("_rowid").to_pylist()))
    asked = [by_id[f"{9:016x}"], by_id[f"{0:016x}"], 12345 << 32]
    assert known.chunk_ids(table, asked) == [f"{9:016x}", f"{0:016x}", None]


def test_row_id_map_follows_adds_deletes_rewrites_and_compaction(tmp_path):
    table = _table(tmp_path, 30)
    known = RowIdMap.load(table, table.version)
    steps = [
        lambda: table.add(
            pa.Table.from_pylist([_chunk(40), _chunk(41)], schema=storage.CHUNKS_SCHEMA)
        ),
        lambda: table.delete(f"chunk_id IN ('{3:016x}', '{40:016x}')"),
        lambda: table.update(
            where=f"chunk_id = '{7:016x}'", values={"content": "def fn_7(): return 7"}
        ),
        lambda: table.optimize(),  # every row at a new address: loaded afresh
    ]
    for step in steps:
        step()
        table.checkout_latest()
        updated = known.refreshed(table, table.version)
        fresh = RowIdMap.load(table, table.version)
        assert updated.version == table.version and updated.chunk_of == fresh.chunk_of
        assert updated.chunk_of != known.chunk_of
        known = updated
