"""Storage: one-commit idempotent replaces and filters that no file name can break."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer_core.chunking.files import file_id
from indexer_core.storage import tables as storage
from tests.fresh_interpreter import python_output


def _chunk_rows(repo: str, paths: list[str], shard: int = 0) -> pa.Table:
    rows = []
    for i, path in enumerate(paths):
        rows.append(
            {name: "" for name in storage.CHUNKS_SCHEMA.names}
            | {
                "chunk_id": f"{i:024x}",
                "repo": repo,
                "path": path,
                "file_id": file_id(repo, path),
                "shard": shard,
                "start_line": 1,
                "end_line": 1,
                "part": 1,
                "parts": 1,
                "content": path,
            }
        )
    return pa.Table.from_pylist(rows, schema=storage.CHUNKS_SCHEMA)


def test_replace_rows_is_idempotent_and_one_commit(db_uri: str) -> None:
    db = storage.connect(db_uri)
    table = storage.open_or_create(db, storage.CHUNKS, storage.CHUNKS_SCHEMA)
    paths = ["a.py", "it's.py", "x' OR '1'='1.py"]
    storage.replace_rows(
        table, "chunk_id", _chunk_rows("r", paths), storage.partition_filter("r", 0)
    )
    version = table.version
    storage.replace_rows(
        table, "chunk_id", _chunk_rows("r", paths), storage.partition_filter("r", 0)
    )
    assert table.version == version + 1
    assert sorted(table.to_arrow().column("path").to_pylist()) == sorted(paths)


def test_delete_of_a_quoted_path_touches_only_that_file(db_uri: str) -> None:
    db = storage.connect(db_uri)
    table = storage.open_or_create(db, storage.CHUNKS, storage.CHUNKS_SCHEMA)
    paths = ["a.py", "it's.py", "x' OR '1'='1.py", 'q"uote.py', "new\nline.py"]
    storage.replace_rows(table, "chunk_id", _chunk_rows("r", paths), None)
    victim = "x' OR '1'='1.py"
    victim_ids = storage.id_list_filter("file_id", [file_id("r", victim)])
    where = f"{storage.partition_filter('r', 0)} AND {victim_ids}"
    storage.replace_rows(table, "chunk_id", _chunk_rows("r", [])[:0], where)
    assert sorted(table.to_arrow().column("path").to_pylist()) == sorted(
        p for p in paths if p != victim
    )


def test_take_rows_returns_the_matched_rows_in_the_order_asked(db_uri: str) -> None:
    """Ids read under a filter take the right rows back, across fragments and deletions."""
    db = storage.connect(db_uri)
    table = storage.open_or_create(db, storage.CHUNKS, storage.CHUNKS_SCHEMA)
    for shard in range(3):  # one fragment each
        paths = [f"s{shard}/{name}.py" for name in ("a", "b", "c", "d")]
        storage.append_rows(table, _chunk_rows("r", paths, shard=shard))
    table.delete("path = 's1/b.py'")  # a deletion vector inside a fragment

    where = "shard >= 1"
    found = storage.read_rows(table, where, ["path"], row_ids=True)
    assert found.num_rows == 7
    ids = found.column(storage.ROW_ID).to_pylist()[::-1]
    taken = storage.take_rows(table, ids, ["content", "shard"])
    assert taken.column_names == ["content", "shard"]
    assert taken.column("content").to_pylist() == found.column("path").to_pylist()[::-1]
    assert "s1/b.py" not in taken.column("content").to_pylist()

    nothing = storage.take_rows(table, [], ["content", "start_line"])
    assert nothing.num_rows == 0
    assert nothing.schema == pa.schema(
        [storage.CHUNKS_SCHEMA.field("content"), storage.CHUNKS_SCHEMA.field("start_line")]
    )


def test_filters_refuse_what_they_cannot_quote() -> None:
    with pytest.raises(ValueError):
        storage.id_list_filter("file_id", ["abc' OR 1=1 --"])
    with pytest.raises(ValueError):
        storage.check_repo_name("bad'name")
    assert storage.sql_string("it's") == "'it''s'"


def test_lancedb_import_defers_the_rest_client_and_keeps_it_usable() -> None:
    """Importing the storage layer skips the REST client's API classes, which cost seconds
    per process, yet the client package still works on first use."""
    code = (
        "import sys\n"
        "import indexer_core.storage\n"
        "assert 'lance_namespace_urllib3_client.api' not in sys.modules\n"
        "import lance_namespace_urllib3_client as client\n"
        "assert client.ApiClient.__name__ == 'ApiClient'\n"
        "assert 'lance_namespace_urllib3_client.api' in sys.modules\n"
        "print('ok')\n"
    )
    assert python_output(code).strip() == "ok"


def test_lancedb_imports_with_lighter_class_definitions_then_puts_them_back(tmp_path) -> None:
    """lancedb's own pydantic models are built on first use, its override checks are the
    3.12 ones, and both are undone once it is imported: models defined afterwards are built
    at once, `overrides` is the package's own again, and a table works end to end."""
    code = (
        "import sys\n"
        "import overrides, pydantic\n"
        "from indexer_core.storage.lancedb_import import import_lancedb, PlainBase\n"
        "own = overrides.override\n"
        "lancedb = import_lancedb()\n"
        "import lance_namespace\n"
        "Response = lance_namespace.ListNamespacesResponse\n"
        "assert not Response.__pydantic_complete__, 'built at import'\n"
        "assert Response(namespaces=['a']).namespaces == ['a']\n"
        "assert Response.__pydantic_complete__\n"
        "with_checks = sys.version_info < (3, 12)\n"
        "assert (PlainBase in lancedb.db.DBConnection.__mro__) == with_checks\n"
        "assert overrides.override is own\n"
        "assert 'defer_build' not in pydantic.BaseModel.model_config\n"
        "class Later(pydantic.BaseModel):\n"
        "    x: int\n"
        "assert Later.__pydantic_complete__\n"
        f"db = lancedb.connect({str(tmp_path / 'db')!r})\n"
        "table = db.create_table('t', [{'x': 1, 'vector': [0.5, 0.5]}])\n"
        "assert table.search([0.5, 0.5]).limit(1).to_list()[0]['x'] == 1\n"
        "assert import_lancedb() is lancedb\n"
        "print('ok')\n"
    )
    assert python_output(code).strip() == "ok"


def test_threads_importing_lancedb_at_once_each_get_the_whole_module() -> None:
    """A step that reads two tables at once on two threads (the checks step compacts the
    manifest beside its checks) imports lancedb on both in a process that has not: each gets
    the module once it is whole, never the half-imported one (`lancedb.connect` missing)."""
    code = (
        "import threading, time\n"
        "from indexer_core.storage.lancedb_import import import_lancedb\n"
        "seen = []\n"
        "def take(delay):\n"
        "    time.sleep(delay)\n"  # the later ones arrive while the first is importing
        "    module = import_lancedb()\n"
        "    seen.append((module.__name__, hasattr(module, 'connect')))\n"
        "threads = [threading.Thread(target=take, args=(d,)) for d in (0, 0.05, 0.15, 0.3)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "print(sorted(seen))\n"
    )
    assert python_output(code).strip() == str([("lancedb", True)] * 4)


def test_open_chunks_adds_the_columns_an_older_table_lacks(db_uri: str) -> None:
    db = storage.connect(db_uri)
    added = {"search_text", "part", "parts"}
    old_schema = pa.schema([f for f in storage.CHUNKS_SCHEMA if f.name not in added])
    rows = (
        _chunk_rows("r", ["pkg/a.py"])
        .drop_columns(sorted(added))
        .set_column(old_schema.get_field_index("name"), "name", pa.array(["readAll"]))
    )
    db.create_table(storage.CHUNKS, rows, schema=old_schema)
    table = storage.open_chunks(db)
    assert set(table.schema.names) == set(storage.CHUNKS_SCHEMA.names)
    # Rows written before get their path, name and content until they are re-chunked.
    (text,) = table.to_arrow().column("search_text").to_pylist()
    assert "pkg/a.py" in text and "readAll" in text
    assert table.to_arrow().select(["part", "parts"]).to_pylist() == [{"part": 1, "parts": 1}]
    storage.open_chunks(db)  # a second open changes nothing
    storage.replace_rows(
        table, "chunk_id", _chunk_rows("r", ["b.py"]), storage.partition_filter("r", 0)
    )
    assert table.to_arrow().column("path").to_pylist() == ["b.py"]


def test_search_text_splits_camel_case_words() -> None:
    from indexer_core.search.names import expand_identifiers, search_text

    assert expand_identifiers("ip.IsUnspecified() && utf8Decode(HTTPServer)") == (
        "ip.IsUnspecified Is Unspecified() && utf8Decode utf8 Decode(HTTPServer HTTP Server)"
    )
    assert expand_identifiers("parse_header z0") == "parse_header z0"
    text = search_text("net/ip.go", "Addr", "Addr.isZero", "return ip.z == z0")
    assert text.split("\n")[:3] == ["net/ip.go", "Addr", "Addr.isZero is Zero"]


def _expand_every_word(text: str) -> str:
    """The definition `expand_identifiers` keeps: every word `_WORD_TOKEN` finds, followed by
    its `_CAMEL_WORD` parts where it has two or more (one Python call per word)."""
    from indexer_core.search.names import _CAMEL_WORD, _WORD_TOKEN

    def expand(match) -> str:
        parts = _CAMEL_WORD.findall(match.group(0))
        return match.group(0) if len(parts) < 2 else f"{match.group(0)} {' '.join(parts)}"

    return _WORD_TOKEN.sub(expand, text)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="aZbY09_.:-> \n\tHTTPéß", max_size=40))
def test_identifiers_expand_as_every_word_would(text: str) -> None:
    from indexer_core.search.names import expand_identifiers

    assert expand_identifiers(text) == _expand_every_word(text)


def test_identifiers_expand_as_every_word_would_on_real_code() -> None:
    from pathlib import Path

    from indexer_core.search.names import expand_identifiers

    for path in sorted(Path(__file__).resolve().parents[2].glob("*/*/*.py"))[:40]:
        text = path.read_text()
        assert expand_identifiers(text) == _expand_every_word(text), path


def test_open_or_create_waits_out_a_table_another_process_is_creating(tmp_path) -> None:
    """The table's directory appears before its first version: opening it then fails with
    "not found". A step that lists it in that moment must wait, not fail (a spawned-steps run
    lost a partition this way)."""
    import shutil
    import threading

    uri = str(tmp_path / "db")
    half_made = tmp_path / "db" / f"{storage.CHUNKS}.lance"
    half_made.mkdir(parents=True)
    db = storage.connect(uri)
    assert storage.CHUNKS in storage.table_names(db)
    with pytest.raises(ValueError, match="not found"):
        db.open_table(storage.CHUNKS)

    def finish_creating() -> None:
        shutil.rmtree(half_made)
        storage.connect(uri).create_table(storage.CHUNKS, schema=storage.CHUNKS_SCHEMA)

    timer = threading.Timer(0.3, finish_creating)
    timer.start()
    table = storage.open_or_create(db, storage.CHUNKS, storage.CHUNKS_SCHEMA)
    timer.join()
    assert table.schema == storage.CHUNKS_SCHEMA and table.count_rows() == 0


def test_open_or_create_gives_up_on_a_table_that_never_appears(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(storage, "_OPEN_ATTEMPTS", 3)
    (tmp_path / "db" / f"{storage.CHUNKS}.lance").mkdir(parents=True)  # listed, never written
    with pytest.raises(ValueError, match="not found"):
        storage.open_or_create(
            storage.connect(str(tmp_path / "db")), storage.CHUNKS, storage.CHUNKS_SCHEMA
        )


def test_a_kept_connection_is_not_listed_per_partition(tmp_path, monkeypatch) -> None:
    """A LanceDB connection is falsy when the database has no table, and taking its truth
    lists the database (`__len__`): on an object store, a LIST per partition.
    Steps hand their kept connection to the core, which must use it without that."""
    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.embed_step import embed_partition, plan_embedding
    from indexer_core.indexing.settings import IndexSettings
    from tests.conftest import write_tree
    from tests.reliability.fakes import HashEmbedder

    root = write_tree(tmp_path / "repo", {"a.py": "def f():\n    return 1\n"})
    db_uri = str(tmp_path / "db")
    settings = IndexSettings(shards=1)
    chunk_partition(db_uri, "repo", str(root), 0, settings)
    embed_partition(db_uri, "repo", 0, HashEmbedder())  # every table exists from here on
    db = storage.kept_connection(db_uri)
    listings = []
    real = type(db).list_tables

    def counted(self, *args, **kwargs):
        listings.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(db), "list_tables", counted)
    (root / "a.py").write_text("def f():\n    return 2\n")
    assert chunk_partition(db_uri, "repo", str(root), 0, settings, db=db).modified == 1
    assert len(plan_embedding(db_uri, "repo", 0, HashEmbedder(), db=db).needed) >= 1
    assert listings == []


def test_vectors_sane_names_each_nan_infinite_or_zero_vector_across_batches(monkeypatch) -> None:
    from indexer_core.storage import integrity

    monkeypatch.setattr(integrity, "_SCAN_BATCH", 3)  # the bad ones fall in several batches
    rows = np.ones((8, 4), dtype=np.float32)
    rows[1, 2] = np.nan
    rows[4] = 0.0
    rows[6, 0] = np.inf
    rows[7] = [0.0, 0.0, 0.0, 1e-30]  # tiny is not zero
    ids = [f"c{i}" for i in range(8)]
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), 4)
    contents = integrity.TableContents(ids, ids, vectors, dim=4)
    outcome = integrity.check_vectors_sane("unused", 4, contents=contents)
    assert not outcome.passed and outcome.examples == ["c1", "c4", "c6"] and outcome.count == 3
    assert not integrity.check_vectors_sane("unused", 8, contents=contents).passed  # wrong dim
    clean = integrity.TableContents(ids[:1], ids[:1], vectors.slice(0, 1), dim=4)
    assert integrity.check_vectors_sane("unused", 4, contents=clean).passed


def test_a_later_registration_wins_over_an_older_request(tmp_path) -> None:
    """A run carries when its registration was asked for: re-executing an old run after the
    repository moved must not move it back; a newer request does move it."""
    from indexer_core.storage import registry

    db_uri = str(tmp_path / "db")
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    registry.register(db_uri, "repo", old, requested_at=100.0)
    registry.register(db_uri, "repo", new, requested_at=200.0)
    assert registry.repositories(db_uri) == {"repo": str(new.resolve())}
    assert registry.register(db_uri, "repo", old, requested_at=150.0) == str(new.resolve())
    assert registry.repositories(db_uri) == {"repo": str(new.resolve())}
    registry.register(db_uri, "repo", old)  # asked now (the CLI's own `register`): it moves
    assert registry.repositories(db_uri) == {"repo": str(old.resolve())}
    with pytest.raises(FileNotFoundError):  # a registration that would take effect checks it
        registry.register(db_uri, "repo", tmp_path / "gone")


def test_a_pending_request_reads_as_register_will_record_it(tmp_path) -> None:
    """A chunk step that starts beside the planning step reads the roots as they are once the
    run's request is recorded: a new repository, or a newer request, gives the request's root;
    a registration made after the request keeps its own."""
    from indexer_core.storage import registry

    db_uri = str(tmp_path / "db")
    old, new, other = tmp_path / "old", tmp_path / "new", tmp_path / "other"
    for path in (old, new, other):
        path.mkdir()
    request = registry.Request("repo", str(old), 100.0)
    assert registry.repositories(db_uri, request) == {"repo": str(old.resolve())}  # no table
    registry.register(db_uri, "other", other, requested_at=50.0)
    assert registry.repositories(db_uri, request) == {
        "repo": str(old.resolve()),
        "other": str(other.resolve()),
    }
    registry.register(db_uri, "repo", new, requested_at=200.0)
    assert registry.repositories(db_uri, request)["repo"] == str(new.resolve())
    moved = registry.Request("repo", str(old), 300.0)
    assert registry.repositories(db_uri, moved)["repo"] == str(old.resolve())
    # A request older than the registry's registration is moot, even for a path now gone.
    gone = registry.Request("repo", str(tmp_path / "gone"), 150.0)
    assert registry.repositories(db_uri, gone)["repo"] == str(new.resolve())
    assert registry.register(db_uri, "repo", gone.root, gone.requested_at) == str(new.resolve())
    for pending in (request, moved):  # what `register` then records agrees
        registry.register(db_uri, pending.repo, pending.root, pending.requested_at)
    assert registry.repositories(db_uri)["repo"] == str(old.resolve())


def test_id_checks_name_duplicates_missing_and_orphan_vectors() -> None:
    from indexer_core.storage import integrity

    vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(16, dtype=np.float32)), 4)
    chunk_ids = ["a", "b", "b", "c"]  # "b" twice in chunks
    vector_ids = ["a", "b", "x", "x"]  # "x" twice and an orphan; "c" has no vector
    contents = integrity.TableContents(chunk_ids, vector_ids, vectors, dim=4)
    unique = integrity.check_unique_chunk_ids("unused", contents=contents)
    assert not unique.passed and unique.examples == ["b", "vector x"] and unique.count == 2
    one = integrity.check_one_vector_per_chunk("unused", contents=contents)
    assert not one.passed and one.count == 2
    assert one.examples == ["missing vector: c", "orphan vector: x"]
    clean = integrity.TableContents(["a", "b"], ["b", "a"], vectors.slice(0, 2), dim=4)
    assert integrity.check_unique_chunk_ids("unused", contents=clean).passed
    assert integrity.check_one_vector_per_chunk("unused", contents=clean).passed
