"""One writer per partition at a time, across processes, for indexes on a local filesystem.

Two writers of the same partition (a sensor run and a backfill) would each read the
partition, decide the same rows are new, and both insert them: LanceDB's `merge_insert`
does not conflict on concurrent inserts of the same key, so the table ends up with
duplicate chunk ids that no later run removes. An advisory `flock` per partition makes the
second writer wait and then find nothing left to do. The kernel drops the lock when its
holder dies, so a killed run never leaves a partition locked.

Object-store URIs (s3://, gs://, ...) get no lock here: there, runs must be serialized by
the orchestrator (docs/guarantees.md, "Local directory vs object storage").
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the orchestrator must serialize
    fcntl = None  # type: ignore[assignment]

LOCK_DIR = ".partition-locks"


def local_path(db_uri: str) -> str | None:
    """The directory of a local database URI, or None for an object store."""
    parsed = urlparse(db_uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # "C:" is a drive, not a scheme
        return parsed.path if parsed.scheme == "file" else db_uri
    return None


@contextmanager
def partition_lock(db_uri: str, repo: str, shard: int) -> Iterator[None]:
    """Hold the exclusive lock of (repo, shard) in this database for the duration of the block."""
    directory = local_path(db_uri)
    if directory is None or fcntl is None:
        yield
        return
    lock_dir = os.path.join(directory, LOCK_DIR)
    os.makedirs(lock_dir, exist_ok=True)
    name = hashlib.blake2b(f"{repo}\0{shard}".encode(), digest_size=8).hexdigest()
    fd = os.open(os.path.join(lock_dir, name), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
