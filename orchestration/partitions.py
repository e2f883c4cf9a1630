"""Partitions: repository (dynamic) x shard (static), the same for every asset.

The shard count is fixed when the code location loads (`CODE_INDEX_SHARDS`, default 8)
because Dagster partitions are static definitions; changing it re-shards every repository.
"""

from __future__ import annotations

import dagster as dg

from indexer_core.indexing.partitioning import parse_shard_key, partition_name, shard_key
from orchestration import config

REPO_DIMENSION = "repo"
SHARD_DIMENSION = "shard"


def shard_count() -> int:
    return config.load().shards


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
        partition_name(repo, s) for s in (shards if shards is not None else range(shard_count()))
    ]


def mapping_key(partition: str) -> str:
    """The dynamic-output mapping key of a partition's chunk step: readable in the UI
    (`myrepo|s03` -> `myrepo_ps03`) and decodable (`partition_of_mapping_key`), since mapping
    keys allow only letters, digits and `_`: `_` is written `__`, `|` is `_p`, and any other
    byte of the key's UTF-8 `_hh` in hex."""
    out = []
    for char in partition:
        if char.isascii() and char.isalnum():
            out.append(char)
        elif char == "_":
            out.append("__")
        elif char == "|":
            out.append("_p")
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


def partition_of_mapping_key(key: str) -> str:
    """The partition a `mapping_key` was made from."""
    data = bytearray()
    i = 0
    while i < len(key):
        char = key[i]
        if char != "_":
            data += char.encode()
            i += 1
        elif key[i + 1] == "_":
            data += b"_"
            i += 2
        elif key[i + 1] == "p":
            data += b"|"
            i += 2
        else:
            data.append(int(key[i + 1 : i + 3], 16))
            i += 3
    return data.decode()


GROUP_SEPARATOR = "_to_"  # `_t` is no escape of `mapping_key`, so the split is unambiguous


def chunk_groups(partitions: list[str], steps: int) -> list[list[str]]:
    """The run's partitions in at most `steps` contiguous runs of nearly equal length, one
    chunk step each: a step costs a process launch, which on small shards outweighs their
    parsing. Shards are balanced by hash, so equal counts are nearly equal work."""
    steps = max(1, min(steps, len(partitions)))
    size, extra = divmod(len(partitions), steps)
    groups, start = [], 0
    for i in range(steps):
        end = start + size + (1 if i < extra else 0)
        groups.append(partitions[start:end])
        start = end
    return [g for g in groups if g]


def first_and_rest(partitions: list[str], steps: int) -> tuple[list[str], list[list[str]]]:
    """The run's first group of partitions, which a chunk step that starts with the run takes
    (the first partition lands without waiting for the plan's process), and the groups the
    planning step fans out to the others (`chunk_groups`)."""
    groups = chunk_groups(partitions, steps)
    return (groups[0], groups[1:]) if groups else ([], [])


# The mapping key of the planning step's one output when it has no group to fan out: Dagster
# skips the join of an empty fan-out, and the join runs the checks. A partition's mapping key
# always holds `_p` (its `|`), so no group's key is this.
NO_GROUP = "none"


def group_mapping_key(group: list[str]) -> str:
    """A chunk step's mapping key: its partition's key, or first `_to_` last for several."""
    if len(group) == 1:
        return mapping_key(group[0])
    return mapping_key(group[0]) + GROUP_SEPARATOR + mapping_key(group[-1])


def group_of_mapping_key(key: str, planned: list[str]) -> list[str]:
    """The partitions a chunk step's mapping key stands for, within the run's sorted
    `planned` partitions (a group is a contiguous run of them); none for `NO_GROUP`."""
    if key == NO_GROUP:
        return []
    first, last = _split_group_key(key)
    start = planned.index(partition_of_mapping_key(first))
    end = planned.index(partition_of_mapping_key(last)) if last else start
    return planned[start : end + 1]


def _split_group_key(key: str) -> tuple[str, str]:
    i = 0
    while i < len(key):
        if key[i] != "_":
            i += 1
        elif key.startswith(GROUP_SEPARATOR, i):
            return key[:i], key[i + len(GROUP_SEPARATOR) :]
        else:
            i += 2 if key[i + 1] in "_p" else 3
    return key, ""
