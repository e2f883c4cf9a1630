"""Asset checks over the whole tables, evaluated at the end of every index run.

They are part of the index graph (`assets/index.py`: the `check_tables` op runs once the
chunk steps and the embedding consumer are done), so `code-index index`, a UI backfill and
`dagster asset materialize` all show their results without a daemon.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from indexer_core.embedding.model import load_embedder
from indexer_core.embedding.model_location import model_dimension
from indexer_core.storage import integrity
from orchestration.resources import CodeIndexResource

CHECK_SPECS = [
    dg.AssetCheckSpec(
        "one_vector_per_chunk",
        asset="vectors",
        description="every chunk has exactly one vector and no vector lacks its chunk",
    ),
    dg.AssetCheckSpec(
        "vectors_sane",
        asset="vectors",
        description="vector dimension matches the model; no NaN or all-zero vectors",
    ),
    dg.AssetCheckSpec("unique_chunk_ids", asset="chunks", description="no duplicate chunk ids"),
]


def _result(outcome: integrity.CheckOutcome, asset: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={"failures": outcome.count, "examples": dg.MetadataValue.json(outcome.examples)},
    )


def check_results(code_index: CodeIndexResource) -> Iterator[dg.AssetCheckResult]:
    """One result per spec of `CHECK_SPECS`, over the tables at `code_index.db_uri`, each
    table read once for all of them."""
    db_uri = code_index.db_uri
    dim = model_dimension(code_index.model) or load_embedder(code_index.model, "cpu", 0).dim
    one_vector, sane, unique = integrity.check_all(db_uri, dim)
    yield _result(one_vector, "vectors")
    yield _result(sane, "vectors")
    yield _result(unique, "chunks")
