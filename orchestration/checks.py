"""Asset checks over the whole tables, run by a job after every index run."""

import dagster as dg

from indexer_core.embedding.model import load_embedder
from indexer_core.storage import integrity
from orchestration.resources import CodeIndexResource


def _result(outcome: integrity.CheckOutcome, asset: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={"failures": outcome.count, "examples": dg.MetadataValue.json(outcome.examples)},
    )


@dg.multi_asset_check(
    specs=[
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
    ],
)
def index_integrity(code_index: CodeIndexResource):
    db_uri = code_index.db_uri
    dim = _model_dim(code_index)
    yield _result(integrity.check_one_vector_per_chunk(db_uri), "vectors")
    yield _result(integrity.check_vectors_sane(db_uri, dim), "vectors")
    yield _result(integrity.check_unique_chunk_ids(db_uri), "chunks")


def _model_dim(code_index: CodeIndexResource) -> int:
    """The configured model's dimension, read from its config without loading weights when possible."""
    import json

    from indexer_core.embedding.model_location import resolve_model_path

    path = resolve_model_path(code_index.model)
    config = path / "config.json"
    pooling = path / "1_Pooling" / "config.json"
    for candidate, key in ((pooling, "word_embedding_dimension"), (config, "hidden_size")):
        if candidate.exists():
            value = json.loads(candidate.read_text()).get(key)
            if isinstance(value, int):
                return value
    return load_embedder(code_index.model, "cpu", 0).dim
