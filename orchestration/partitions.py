"""Partitions: repository (dynamic) x shard (static), the same for every asset.

The shard count is fixed when the code location loads (`CODE_INDEX_SHARDS`, default 8)
because Dagster partitions are static definitions; changing it re-shards every repository.
"""

from __future__ import annotations

import os

import dagster as dg

from indexer_core.indexing.partitioning import parse_shard_key, shard_key

REPO_DIMENSION = "repo"
SHARD_DIMENSION = "shard"


def shard_count() -> int:
    return int(os.environ.get("CODE_INDEX_SHARDS", "8"))


repo_partitions = dg.DynamicPartitionsDefinition(name="repositories")
shard_partitions = dg.StaticPartitionsDefinition([shard_key(s) for s in range(shard_count())])
index_partitions = dg.MultiPartitionsDefinition(
    {REPO_DIMENSION: repo_partitions, SHARD_DIMENSION: shard_partitions}
)


def partition_key(repo: str, shard: int) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({REPO_DIMENSION: repo, SHARD_DIMENSION: shard_key(shard)})


def split_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, int]:
    """(repo, shard) of a partition key such as `myrepo|s03`."""
    if not isinstance(key, dg.MultiPartitionKey):
        key = index_partitions.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    return dims[REPO_DIMENSION], parse_shard_key(dims[SHARD_DIMENSION])


def keys_for_repo(repo: str, shards: list[int] | None = None) -> list[str]:
    return [
        str(partition_key(repo, s))
        for s in (shards if shards is not None else range(shard_count()))
    ]
