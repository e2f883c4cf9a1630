"""The search index assets, materialized by Dagster on a small real table."""

from __future__ import annotations

import dagster as dg
import pytest

from indexer_core.search.indexes import fts_ready, has_vector_index
from indexer_core.search.query import search
from indexer_core.storage import tables as storage
from orchestration.assets.search_indexes import chunk_search_index, vector_ann_index
from orchestration.resources import CodeIndexResource
from tests.core.search_corpus import build_index


@pytest.fixture()
def db(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    uri = build_index(tmp_path)
    table = storage.connect(uri).open_table(storage.CHUNKS)
    for index in list(table.list_indices()):
        table.drop_index(index.name)
    return uri


def _materialize(db: str, min_rows: int) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.get() as instance:
        return dg.materialize(
            [chunk_search_index, vector_ann_index],
            resources={"code_index": CodeIndexResource(db_uri=db)},
            run_config={"ops": {"vector_ann_index": {"config": {"min_rows": min_rows}}}},
            instance=instance,
        )


def test_index_assets_build_fts_and_ann_above_threshold(db):
    chunks = storage.connect(db).open_table(storage.CHUNKS)
    assert not fts_ready(chunks)
    result = _materialize(db, min_rows=5)
    assert result.success
    db_handle = storage.connect(db)
    assert fts_ready(db_handle.open_table(storage.CHUNKS))
    assert has_vector_index(db_handle.open_table(storage.VECTORS))
    ann = result.asset_materializations_for_node("vector_ann_index")[0].metadata
    assert ann["dagster/row_count"].value >= 5
    assert search(db, "parse_header", k=1)[0].name == "parse_header"

    below = _materialize(db, min_rows=10_000)
    assert below.success
    assert not has_vector_index(storage.connect(db).open_table(storage.VECTORS))
    note = below.asset_materializations_for_node("vector_ann_index")[0].metadata["note"].value
    assert "flat" in note
