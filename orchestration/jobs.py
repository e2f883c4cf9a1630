"""Jobs and their executor: chunk steps in parallel, one embedding consumer per GPU."""

from __future__ import annotations

import dagster as dg

from orchestration import config
from orchestration.assets.index import EMBEDDER_TAG, SHARDS_TAG
from orchestration.launch import start_method
from orchestration.partitions import index_partitions, keys_for_repo

_settings = config.load()
# One chunk step per core plus the embedding consumer (it mostly waits, or uses the GPU).
index_executor = dg.multiprocess_executor.configured(
    {
        "max_concurrent": _settings.max_concurrent,
        "tag_concurrency_limits": [{"key": EMBEDDER_TAG, "value": "1", "limit": 1}],
        "start_method": start_method(_settings.start_method),
    }
)

index_job = dg.define_asset_job(
    "index_job",
    selection=dg.AssetSelection.assets("files", "chunks", "vectors"),
    partitions_def=index_partitions,
    executor_def=index_executor,
    description="Index the selected partitions: chunk every shard in parallel, "
    "embed each as it lands.",
)


def partition_tags(repo: str, shards: list[int]) -> dict[str, str]:
    """Run tags selecting these shards of one repository.

    The range tags cover first..last shard (Dagster runs over one range); the shards tag
    narrows the run to exactly the listed ones, so untouched shards in between are skipped.
    """
    keys = keys_for_repo(repo, sorted(shards))
    return {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
        SHARDS_TAG: ",".join(keys),
    }
