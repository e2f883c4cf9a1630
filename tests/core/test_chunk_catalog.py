"""The chunk catalogue follows its table incrementally and stays equal to a fresh load.

A real repository (stdlib modules, whose long functions become `(part i/n)` chunks) is
chunked into a real LanceDB table; then files are edited, added and deleted and indexed
again (`merge_insert` rewrites every row of a changed file), chunks are rewritten under the
same id with other metadata, and the table is compacted. After each step the catalogue
updated from the previous one must answer exactly like one loaded from scratch, and map
every row id of the table to its own chunk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.search import catalog as chunk_catalog
from indexer_core.search.catalog import CATALOG_COLUMNS, ChunkCatalog
from indexer_core.search.names import word_parts
from indexer_core.search.row_ids import ROW_ID
from indexer_core.storage import tables as storage

STDLIB = Path(shutil.__file__).parent
MODULES = ["textwrap.py", "shlex.py", "json/decoder.py", "json/encoder.py", "fnmatch.py"]
SETTINGS = IndexSettings(shards=1, use_git=False)
SENTENCES = [
    "wrap the text of a paragraph",
    "split a shell command line",
    "decode a json string",
    "encode the object as json",
    "match a file name against a pattern",
    "the width of the line",
    "read the next token",
    "escape the string",
    "indent each line of the text",
    "scan once",
]


def _index(db_uri: str, root: Path) -> None:
    chunk_partition(db_uri, "std", str(root), 0, SETTINGS)


@pytest.fixture()
def repo(tmp_path) -> tuple[str, Path]:
    root = tmp_path / "repo"
    for module in MODULES:
        target = root / "lib" / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STDLIB / module, target)
    db_uri = str(tmp_path / "db")
    _index(db_uri, root)
    return db_uri, root


def _table(db_uri: str):
    return storage.connect(db_uri).open_table(storage.CHUNKS)


def _queries(catalog: ChunkCatalog) -> tuple[list[str], list[str]]:
    """Identifier queries (every name, and `Scope.name` forms) and sentences of name words."""
    rows = [r for r in catalog.names.rows if r is not None]
    names = sorted({r["name"] for r in rows if r["name"]})
    identifiers = names + [
        "JSONDecoder.decode",
        "TextWrapper.wrap",
        "shlex.split",
        "py_scanstring",
        "encode_basestring",
        "_fold",
        "read_token",
    ]
    sentences = SENTENCES + [" ".join(["the"] + word_parts(n) + ["of it"]) for n in names[::3]]
    return identifiers, sentences


def _state(catalog: ChunkCatalog, identifiers: list[str], sentences: list[str]) -> dict:
    """Everything a query can see of a catalogue, in terms of chunk ids (not slots)."""
    rows = catalog.names.rows
    live = {cid: slot for cid, slot in catalog.row_of.items()}
    groups = {g for g in catalog.groups.group_of.values()}
    return {
        "rows": {cid: {c: rows[slot][c] for c in CATALOG_COLUMNS} for cid, slot in live.items()},
        "row_ids": {cid: int(catalog.row_ids[slot]) for cid, slot in live.items()},
        "by_row": dict(catalog.by_row.chunk_of),
        "groups": sorted(
            (tuple(catalog.groups.members[g]), catalog.groups.spans[g]) for g in groups
        ),
        "group_of": {
            cid: tuple(catalog.groups.members[g]) for cid, g in catalog.groups.group_of.items()
        },
        "names": {
            q: [(rows[i]["chunk_id"], s) for i, s in catalog.names.rank(q, limit=200)]
            for q in identifiers
        },
        "words": {
            q: [(rows[i]["chunk_id"], s) for i, s in catalog.words.rank(q, limit=200)]
            for q in sentences
        },
        "idf": dict(catalog.words.idf),
        "name_mass": {cid: float(catalog.words.name_mass[slot]) for cid, slot in live.items()},
        "live": catalog.names.live,
    }


def _check(previous: ChunkCatalog, table, monkeypatch) -> ChunkCatalog:
    """Update `previous` to the table's version (incrementally: a full load fails here) and
    compare it with a fresh load and with the table itself."""
    table.checkout_latest()
    version = table.version
    with monkeypatch.context() as patch:

        def no_full_load(*args, **kwargs):
            raise AssertionError("refreshed fell back to a full load")

        patch.setattr(ChunkCatalog, "_from_arrow", no_full_load)
        updated = previous.refreshed(table, version)
    fresh = ChunkCatalog.load(table, version)
    identifiers, sentences = _queries(fresh)
    got, want = _state(updated, identifiers, sentences), _state(fresh, identifiers, sentences)
    for key in want:
        assert got[key] == want[key], key
    truth = table.search().select(["chunk_id"]).with_row_id(True).limit(None).to_arrow()
    assert updated.by_row.chunk_of == dict(
        zip(truth.column(ROW_ID).to_pylist(), truth.column("chunk_id").to_pylist())
    )
    assert updated.version == version
    return updated


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_the_corpus_has_what_the_checks_need(repo):
    db_uri, _ = repo
    catalog = ChunkCatalog.load(_table(db_uri), _table(db_uri).version)
    assert catalog.names.live > 100
    assert len(set(catalog.groups.group_of.values())) >= 3  # long functions in parts
    _, sentences = _queries(catalog)
    assert sum(1 for q in sentences if len(catalog.words.rank(q, limit=200)) > 1) > 10


def test_updates_after_edits_deletes_rewrites_and_compaction_equal_a_fresh_load(repo, monkeypatch):
    db_uri, root = repo
    table = _table(db_uri)
    catalog = ChunkCatalog.load(table, table.version)
    before = {cid: int(catalog.row_ids[slot]) for cid, slot in catalog.row_of.items()}

    # An edit in one file, a new file: the changed file's rows are all rewritten.
    _edit(
        root / "lib/textwrap.py",
        "def dedent(text):",
        "def undent_text(text):\n    return text\n\n\ndef dedent(text):",
    )
    (root / "lib/extra.py").write_text(
        "def parse_header(line):\n    return line.split(':', 1)\n\n\n"
        "class HeaderParser:\n    def parse_all(self, lines):\n        return lines\n"
    )
    _index(db_uri, root)
    catalog = _check(catalog, table, monkeypatch)
    moved = [
        cid
        for cid, slot in catalog.row_of.items()
        if cid in before and before[cid] != catalog.row_ids[slot]
    ]
    assert moved  # rows rewritten by merge_insert, kept by the update with new row ids

    # A deleted file, and a long function renamed: its parts regroup under the new name.
    (root / "lib/fnmatch.py").unlink()
    _edit(root / "lib/json/decoder.py", "def py_scanstring(", "def py_scan_string(")
    _index(db_uri, root)
    catalog = _check(catalog, table, monkeypatch)
    assert not any(r["path"] == "lib/fnmatch.py" for r in catalog.names.rows if r is not None)

    # The same chunk ids rewritten with other metadata (a chunker change would do this):
    # a plain function renamed, and one part of a grouped function moved out of its group.
    grouped = next(iter(catalog.groups.group_of))
    plain = next(cid for cid in catalog.row_of if cid not in catalog.groups.group_of)
    table.update(
        where=f"chunk_id = '{plain}'", values={"name": "renamed_token_reader", "kind": "method"}
    )
    table.update(where=f"chunk_id = '{grouped}'", values={"name": "other_scan"})
    catalog = _check(catalog, table, monkeypatch)
    assert (
        catalog.meta(plain)["name"] == "renamed_token_reader"
        and grouped not in catalog.groups.group_of
    )

    # A twin of a chunk (same name, path and first line, another id) ties with it in the
    # name ranking; the chunk deleted and written again unchanged is a move, like a rewrite
    # by merge_insert: it keeps its slot, before the twin's, where a fresh load reads it last.
    row = table.search().where(f"chunk_id = '{plain}'").limit(1).to_arrow()
    twin = row.to_pylist()[0] | {"chunk_id": "f" * 24, "content": "def twin(): pass"}
    table.add(pa.Table.from_pylist([twin], schema=table.schema))
    catalog = _check(catalog, table, monkeypatch)
    table.delete(f"chunk_id = '{plain}'")
    table.add(row.select(table.schema.names))
    catalog = _check(catalog, table, monkeypatch)
    assert catalog.row_of[plain] < catalog.row_of["f" * 24]
    tied = [
        cid
        for cid, _ in _state(catalog, ["renamed_token_reader"], [])["names"]["renamed_token_reader"]
    ]
    assert tied[:2] == sorted([plain, "f" * 24])

    # Compaction moves every row to a new address.
    held = {cid: int(catalog.row_ids[slot]) for cid, slot in catalog.row_of.items()}
    table.optimize()
    catalog = _check(catalog, table, monkeypatch)
    assert all(held[cid] != catalog.row_ids[slot] for cid, slot in catalog.row_of.items())
    picked = list(catalog.row_of)[:5]
    assert catalog.contents(table, picked) == dict(
        zip(picked, [_content(table, cid) for cid in picked])
    )


def test_an_update_leaves_the_catalogue_a_query_holds_unchanged(repo, monkeypatch):
    db_uri, root = repo
    table = _table(db_uri)
    catalog = ChunkCatalog.load(table, table.version)
    identifiers, sentences = _queries(catalog)
    before = _state(catalog, identifiers, sentences)
    _edit(root / "lib/shlex.py", "def split(", "def split_words(")
    (root / "lib/json/encoder.py").unlink()
    _index(db_uri, root)
    _check(catalog, table, monkeypatch)
    assert _state(catalog, identifiers, sentences) == before


def test_an_unchanged_table_keeps_its_catalogue(repo):
    db_uri, _ = repo
    table = _table(db_uri)
    catalog = ChunkCatalog.load(table, table.version)
    table.add(pa.Table.from_pylist([], schema=table.schema))  # a new version, same rows
    table.checkout_latest()
    assert table.version != catalog.version
    same = catalog.refreshed(table, table.version)
    assert same.version == table.version and same.names is catalog.names


def test_a_chunk_id_twice_falls_back_to_a_full_load(repo):
    db_uri, _ = repo
    table = _table(db_uri)
    catalog = ChunkCatalog.load(table, table.version)
    cid = next(iter(catalog.row_of))
    table.add(
        table.search().where(f"chunk_id = '{cid}'").limit(1).to_arrow().select(table.schema.names)
    )
    table.checkout_latest()
    updated = catalog.refreshed(table, table.version)
    assert updated.exact is False and cid in updated.row_of
    fresh = ChunkCatalog.load(table, table.version)
    assert set(updated.row_of) == set(fresh.row_of)


def test_mostly_empty_slots_are_packed_by_a_full_load(repo, monkeypatch):
    db_uri, root = repo
    table = _table(db_uri)
    catalog = ChunkCatalog.load(table, table.version)
    monkeypatch.setattr(chunk_catalog, "EMPTY_SLOTS_KEPT", 0)
    for module in MODULES[:3]:
        (root / "lib" / module).unlink()
    _index(db_uri, root)
    table.checkout_latest()
    packed = catalog.refreshed(table, table.version)
    assert len(packed.names.rows) == packed.names.live < catalog.names.live / 2
    fresh = ChunkCatalog.load(table, table.version)
    identifiers, sentences = _queries(fresh)
    assert _state(packed, identifiers, sentences) == _state(fresh, identifiers, sentences)


def _content(table, chunk_id: str) -> str:
    rows = storage.read_rows(table, storage.id_list_filter("chunk_id", [chunk_id]), ["content"])
    return rows.column("content").to_pylist()[0]
