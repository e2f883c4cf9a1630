"""One writer per partition at a time, across processes, and across hosts given Postgres.

Two writers of the same partition (a sensor run and a backfill) would each read the
partition, decide the same rows are new, and both insert them: LanceDB's `merge_insert`
does not conflict on concurrent inserts of the same key, so the table ends up with
duplicate chunk ids that no later run removes. A lock per partition makes the second
writer wait and then find nothing left to do.

Two kinds, both released when their holder dies, so a killed run never leaves a partition
locked:
- a Postgres advisory lock (session level: on the process's own session when free, else
  on a connection that waits for it) when a DSN is given (`use_postgres_locks`, or the
  `dsn` argument): it works across hosts and for object stores, where the store itself has
  no lock;
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
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
    """A session-level advisory lock: taken without waiting on the process's own session
    (`_SessionLocks`); when that finds it busy and `wait` is asked, on a connection of its
    own that waits. Closing a session (or the holder's death, which closes it) releases its
    locks."""
    held, busy = _session_locks(dsn).try_lock(key, shared)
    if held is not None or (busy and not wait):
        return held
    return _lock_on_own_connection(dsn, key, wait, shared)


def _connect(dsn: str):
    """A connection for advisory locks; keepalives find a vanished host."""
    import psycopg2  # the driver dagster-postgres ships; imported only where Postgres is used

    conn = psycopg2.connect(
        dsn, keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3
    )
    conn.autocommit = True
    return conn


class _SessionLocks:
    """Advisory locks taken without waiting, on one Postgres session (per process and DSN).

    A connection per lock costs a server process started and stopped: a run takes a lock
    per partition in each chunk step and consumer, and on a small host those connections
    were a visible share of the run. Postgres lets a session take again a lock it holds, so
    this process's own holders are counted here (`_held`) and exclude each other before the
    server is asked. Nothing waits on this session (a wait takes a connection of its own),
    so a release never queues behind a wait.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._mutex = threading.Lock()
        self._conn = None
        self._held: dict[int, tuple[bool, int]] = {}  # key -> (shared, holders here)

    def try_lock(self, key: int, shared: bool) -> tuple[HeldLock | None, bool]:
        """The lock, or None and whether it is busy (False: this session failed, so the
        caller should ask on a connection of its own)."""
        with self._mutex:
            mode, holders = self._held.get(key, (shared, 0))
            if holders and not (shared and mode):
                return None, True  # held here already, in a mode that excludes this one
            if not holders:
                try:
                    if self._conn is None:
                        self._conn = _connect(self.dsn)
                    with self._conn.cursor() as cursor:
                        kind = "_shared" if shared else ""
                        cursor.execute(f"SELECT pg_try_advisory_lock{kind}(%s)", (key,))
                        if not cursor.fetchone()[0]:
                            return None, True
                except Exception:  # noqa: BLE001 - a broken session: the caller connects
                    self._drop()
                    return None, False
            self._held[key] = (shared, holders + 1)
            session = self._conn
        return HeldLock(lambda: self._unlock(session, key)), False

    def _unlock(self, session, key: int) -> None:
        with self._mutex:
            if session is not self._conn or key not in self._held:
                return  # that session is gone, and its locks with it
            shared, holders = self._held.pop(key)
            if holders > 1:
                self._held[key] = (shared, holders - 1)
                return
            try:
                with session.cursor() as cursor:
                    kind = "_shared" if shared else ""
                    cursor.execute(f"SELECT pg_advisory_unlock{kind}(%s)", (key,))
            except Exception:  # noqa: BLE001 - the session broke: every lock on it is gone
                self._drop()

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, {}
        if conn is not None:
            with suppress(Exception):  # closing a broken connection
                conn.close()


_sessions: dict[str, _SessionLocks] = {}
_sessions_mutex = threading.Lock()


def _session_locks(dsn: str) -> _SessionLocks:
    with _sessions_mutex:
        if dsn not in _sessions:
            _sessions[dsn] = _SessionLocks(dsn)
        return _sessions[dsn]


_inherited: list[_SessionLocks] = []


def _forget_sessions_in_child() -> None:
    """A forked child starts sessions of its own; its parent's stay the parent's. They are
    kept, never used: closing one here, even by collecting it, would end the parent's
    session and its locks."""
    global _sessions_mutex
    _inherited.extend(_sessions.values())
    _sessions.clear()
    _sessions_mutex = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_sessions_in_child)


def _lock_on_own_connection(dsn: str, key: int, wait: bool, shared: bool) -> HeldLock | None:
    conn = _connect(dsn)
    try:
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
    held = hold_partition_lock(db_uri, repo, shard, dsn)
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
