"""Partition locks across hosts: Postgres advisory locks held by one process exclude the
others, whatever the database URI, and a holder that dies releases them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from indexer_core.storage import locking
from tests.cluster.services import PROJECT

pytestmark = pytest.mark.cluster
DB = "s3://code-index/locks"


def _holder(dsn: str) -> subprocess.Popen:
    code = (
        "import sys, time; from indexer_core.storage import locking\n"
        f"held = locking.try_partition_lock({DB!r}, 'repo', 3, dsn={dsn!r})\n"
        "print('held' if held else 'busy', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_an_advisory_lock_excludes_other_processes_until_its_holder_dies(cluster) -> None:
    holder = _holder(cluster.pg_url)
    try:
        assert locking.try_partition_lock(DB, "repo", 3, dsn=cluster.pg_url) is None
        other = locking.try_partition_lock(DB, "repo", 4, dsn=cluster.pg_url)
        assert other is not None  # another partition is free
        other.release()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        deadline = time.monotonic() + 10
        held = None
        while held is None and time.monotonic() < deadline:
            held = locking.try_partition_lock(DB, "repo", 3, dsn=cluster.pg_url)
            time.sleep(0.1)
        assert held is not None  # the dead holder's connection took its lock with it
        held.release()
    finally:
        holder.kill()


def test_the_blocking_lock_waits_for_the_holder(cluster) -> None:
    held = locking.try_partition_lock(DB, "repo", 5, dsn=cluster.pg_url)
    waited: list[float] = []

    import threading

    def take() -> None:
        started = time.monotonic()
        with locking.partition_lock(DB, "repo", 5, dsn=cluster.pg_url):
            waited.append(time.monotonic() - started)

    thread = threading.Thread(target=take)
    thread.start()
    time.sleep(0.5)
    assert not waited
    held.release()
    thread.join(10)
    assert waited and waited[0] >= 0.5


def test_slice_locks_share_the_partition_lock_across_connections(cluster) -> None:
    dsn = cluster.pg_url
    shared = [locking.try_partition_lock(DB, "repo", 6, dsn=dsn, shared=True) for _ in range(2)]
    slices = [locking.try_partition_lock(DB, "repo", 6, dsn=dsn, part=i) for i in range(2)]
    assert all(shared) and all(slices)  # two slices written side by side
    assert locking.try_partition_lock(DB, "repo", 6, dsn=dsn, part=0) is None
    assert locking.try_partition_lock(DB, "repo", 6, dsn=dsn) is None  # no whole writer
    for held in shared + slices:
        held.release()
    whole = locking.try_partition_lock(DB, "repo", 6, dsn=dsn)
    assert whole is not None
    assert locking.try_partition_lock(DB, "repo", 6, dsn=dsn, shared=True) is None
    whole.release()


def test_locks_taken_one_after_another_share_one_session(cluster) -> None:
    """A lock per partition, taken and released in turn, costs no connection each: the
    process's own session serves them (a connection per lock was a server process each)."""
    from tests.cluster.test_pooled_storage import _sessions

    before = _sessions(cluster.pg_url)
    for shard in range(20):
        with locking.partition_lock(DB, "repo", 100 + shard, dsn=cluster.pg_url):
            pass
        claim = locking.try_partition_lock(DB, "repo", 100 + shard, dsn=cluster.pg_url)
        assert claim is not None
        claim.release()
    opened = _sessions(cluster.pg_url) - before - 1  # less the count's own connection
    assert opened <= 2
