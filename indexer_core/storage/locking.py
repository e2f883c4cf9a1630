"""One writer per partition at a time, across processes, and across hosts given Postgres.

Two writers of the same partition (a sensor run and a backfill) would each read the
partition, decide the same rows are new, and both insert them: LanceDB's `merge_insert`
does not conflict on concurrent inserts of the same key, so the table ends up with
duplicate chunk ids that no later run removes. A lock per partition makes the second
writer wait and then find nothing left to do.

Two kinds, both released when their holder dies, so a killed run never leaves a partition
locked:
- a Postgres advisory lock (session level, one connection per held lock) when a DSN is
  given (`use_postgres_locks`, or the `dsn` argument): it works across hosts and for object
  stores, where the store itself has no lock;
- otherwise an advisory `flock` per partition in the database directory (one host only).

Object-store URIs without a DSN get no lock here: there, runs must be serialized by the
orchestrator (docs/guarantees.md, "Local directory vs object storage").

`try_partition_lock` takes a lock without waiting: the embedding consumers claim a
partition with it, so several consumers of one run embed each partition once. A consumer
that embeds one slice of a large partition (`part`) holds that slice's lock and the
partition's lock `shared`: slices with disjoint rows are written side by side, while a
writer of the whole partition (a chunk step, an unsliced embedding) still excludes them.
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
_postgres_dsn: str | None = None


def use_postgres_locks(dsn: str | None) -> None:
    """Take every later partition lock in this process from Postgres at `dsn` (None: flock)."""
    global _postgres_dsn
    _postgres_dsn = dsn or None


def postgres_dsn() -> str | None:
    return _postgres_dsn


def local_path(db_uri: str) -> str | None:
    """The directory of a local database URI, or None for an object store."""
    parsed = urlparse(db_uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # "C:" is a drive, not a scheme
        return parsed.path if parsed.scheme == "file" else db_uri
    return None


class HeldLock:
    """A partition lock that is held until `release()` (idempotent)."""

    def __init__(self, release) -> None:
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()


def _lock_name(repo: str, shard: int, part: int | None) -> str:
    return f"{repo}\0{shard}" + ("" if part is None else f"\0{part}")


def advisory_key(db_uri: str, repo: str, shard: int, part: int | None = None) -> int:
    """A signed 64-bit key naming (database, repository, shard[, slice]) for
    `pg_advisory_lock`."""
    name = f"{db_uri.rstrip('/')}\0{_lock_name(repo, shard, part)}"
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _acquire(
    db_uri: str,
    repo: str,
    shard: int,
    dsn: str | None,
    wait: bool,
    part: int | None = None,
    shared: bool = False,
) -> HeldLock | None:
    dsn = dsn or _postgres_dsn
    if dsn:
        return _postgres_lock(dsn, advisory_key(db_uri, repo, shard, part), wait, shared)
    directory = local_path(db_uri)
    if directory is None or fcntl is None:
        return HeldLock(None)  # nothing to hold: see the module docstring
    lock_dir = os.path.join(directory, LOCK_DIR)
    os.makedirs(lock_dir, exist_ok=True)
    name = hashlib.blake2b(_lock_name(repo, shard, part).encode(), digest_size=8).hexdigest()
    fd = os.open(os.path.join(lock_dir, name), os.O_RDWR | os.O_CREAT, 0o666)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return HeldLock(lambda: os.close(fd))  # closing releases the lock


def _postgres_lock(dsn: str, key: int, wait: bool, shared: bool = False) -> HeldLock | None:
    """A session-level advisory lock on its own connection: closing it (or the holder's
    death, which closes it) releases the lock. Keepalives find a vanished host."""
    import psycopg2  # the driver dagster-postgres ships; imported only where Postgres is used

    conn = psycopg2.connect(
        dsn, keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3
    )
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            kind = "_shared" if shared else ""
            if wait:
                cursor.execute(f"SELECT pg_advisory_lock{kind}(%s)", (key,))
                held = True
            else:
                cursor.execute(f"SELECT pg_try_advisory_lock{kind}(%s)", (key,))
                held = bool(cursor.fetchone()[0])
    except BaseException:
        conn.close()
        raise
    if not held:
        conn.close()
        return None
    return HeldLock(conn.close)


@contextmanager
def partition_lock(db_uri: str, repo: str, shard: int, dsn: str | None = None) -> Iterator[None]:
    """Hold the exclusive lock of (repo, shard) in this database for the duration of the block."""
    held = _acquire(db_uri, repo, shard, dsn, wait=True)
    try:
        yield
    finally:
        held.release()


def hold_partition_lock(db_uri: str, repo: str, shard: int, dsn: str | None = None) -> HeldLock:
    """The exclusive lock of (repo, shard), waited for; held until its `release()`."""
    return _acquire(db_uri, repo, shard, dsn, wait=True)


def try_partition_lock(
    db_uri: str,
    repo: str,
    shard: int,
    dsn: str | None = None,
    part: int | None = None,
    shared: bool = False,
) -> HeldLock | None:
    """The lock of (repo, shard), or of its slice `part`, if it is free now, else None
    (never waits). `shared` locks coexist with each other, not with an exclusive one."""
    return _acquire(db_uri, repo, shard, dsn, wait=False, part=part, shared=shared)
