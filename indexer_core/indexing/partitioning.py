"""Which shard a file belongs to, and the data version of a shard.

A file's shard is a stable hash of its repository-relative path, so an edited file dirties
exactly one partition and shards stay balanced whatever the directory layout.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable


@functools.lru_cache(maxsize=1 << 20)
def shard_of(path: str, shards: int) -> int:
    """The shard of a path: cached, since a long-lived sensor process asks about every file each
    tick."""
    digest = hashlib.blake2b(path.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_key(shard: int) -> str:
    """The readable, typable partition key of a shard: s00, s01, ..."""
    return f"s{shard:02d}"


def partition_name(repo: str, shard: int) -> str:
    """A partition's key as Dagster writes a (repository, shard) key: `myrepo|s03`."""
    return f"{repo}|{shard_key(shard)}"


def parse_shard_key(key: str) -> int:
    if not (key.startswith("s") and key[1:].isdigit()):
        raise ValueError(f"not a shard key: {key!r} (expected s00, s01, ...)")
    return int(key[1:])


def data_version(files: Iterable[tuple[str, str]], settings_fingerprint: str) -> str:
    """A hash of a shard's sorted (path, file hash) pairs and the settings that shape chunks."""
    digest = hashlib.blake2b(settings_fingerprint.encode(), digest_size=10)
    for path, file_hash in sorted(files):
        digest.update(path.encode("utf-8", "surrogatepass") + b"\0" + file_hash.encode() + b"\n")
    return digest.hexdigest()
