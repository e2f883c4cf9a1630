"""Search indexes as assets downstream of the tables they index.

`chunk_search_index` (full-text on content and names, id lookups) follows `chunks`;
`vector_ann_index` follows `vectors`. Both are whole-table and unpartitioned: an index spans
every partition, so one rebuild after a run serves all of them. The ANN index exists only
above a row threshold; below it search is a flat, exact scan.
"""

import dagster as dg
from pydantic import Field

from indexer_core.search import indexes as search_index
from indexer_core.search.indexes import IndexBuild
from indexer_core.storage import tables as storage
from orchestration.resources import CodeIndexResource

GROUP = "search"


class AnnIndexConfig(dg.Config):
    min_rows: int = Field(
        default_factory=lambda: search_index.ANN_MIN_ROWS,
        description="build the ANN index only at or above this many vectors (flat search below)",
    )


def _result(build: IndexBuild, db_uri: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": storage.table_uri(db_uri, build.table),
            "dagster/row_count": build.rows,
            "indexes_built": dg.MetadataValue.json(build.built),
            "indexes_dropped": dg.MetadataValue.json(build.dropped),
            "seconds": round(build.seconds, 3),
            "note": build.note,
        }
    )


@dg.asset(
    deps=["chunks"],
    group_name=GROUP,
    kinds={"lancedb"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Full-text indexes on chunks.content and chunks.name, "
    "B-tree on chunk_id and parent_id.",
)
def chunk_search_index(code_index: CodeIndexResource) -> dg.MaterializeResult:
    return _result(search_index.build_fts_indexes(code_index.db_uri), code_index.db_uri)


@dg.asset(
    deps=["vectors"],
    group_name=GROUP,
    kinds={"lancedb"},
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        f"Cosine {search_index.ANN_INDEX_TYPE} index on vectors.vector once the table has enough "
        "rows to pay off (config min_rows); flat exact search below."
    ),
)
def vector_ann_index(config: AnnIndexConfig, code_index: CodeIndexResource) -> dg.MaterializeResult:
    return _result(
        search_index.build_vector_index(code_index.db_uri, config.min_rows), code_index.db_uri
    )


search_index_assets = [chunk_search_index, vector_ann_index]
