"""Real LanceDB commit conflicts: what lance resolves itself, and what `with_commit_retry` must.

Partition writers (`replace_rows`: one merge_insert commit each) on disjoint partitions of
one table never surface a conflict: lance rebases their commits onto each other. What does
surface is a compaction (housekeeping's `optimize`) planned on a version that a writer
has since superseded by deleting rows of the fragments being compacted: lance raises
"Retryable commit conflict ... preempted by concurrent transaction ...". Retrying on the
same handle plans on the same old version and loses again, so the retry moves the handle
to the latest version first. No fakes here: every error is the one lance raises.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from indexer_core.storage import tables as storage
from indexer_core.storage.housekeeping import optimize_table

SCHEMA = pa.schema(
    [("id", pa.string()), ("repo", pa.string()), ("shard", pa.int32()), ("gen", pa.int64())]
)
HOUR = timedelta(hours=1)  # the default grace: nothing a concurrent writer uses is cleaned up


def _rows(shard: int, gen: int) -> pa.Table:
    n = 40 - gen % 9  # the row count changes, so each write also deletes rows
    return pa.table(
        {
            "id": [f"{shard:02x}{i:04x}" for i in range(n)],
            "repo": ["r"] * n,
            "shard": [shard] * n,
            "gen": [gen] * n,
        },
        schema=SCHEMA,
    )


def _write(table, shard: int, gen: int) -> None:
    storage.replace_rows(table, "id", _rows(shard, gen), storage.partition_filter("r", shard))


def _table(db_uri: str, shards: int):
    table = storage.open_or_create(storage.connect(db_uri), "t", SCHEMA)
    for shard in range(shards):  # one commit, one small fragment each: compaction has work
        _write(table, shard, 0)
    return table


def _assert_exactly(db_uri: str, last_gen: dict[int, int]) -> None:
    rows = storage.connect(db_uri).open_table("t").to_arrow().to_pylist()
    ids = Counter(r["id"] for r in rows)
    assert not [i for i, n in ids.items() if n > 1], "duplicate ids"
    expected = {
        (r["id"], r["shard"], r["gen"])
        for s, g in last_gen.items()
        for r in _rows(s, g).to_pylist()
    }
    assert {(r["id"], r["shard"], r["gen"]) for r in rows} == expected


def test_retry_recovers_from_a_real_compaction_conflict(tmp_path: Path) -> None:
    db_uri = str(tmp_path / "db")
    _table(db_uri, 4)
    stale = storage.connect(db_uri).open_table("t")  # housekeeping opened the table ...
    _write(storage.connect(db_uri).open_table("t"), 1, 1)  # ... and a partition run committed

    with pytest.raises(RuntimeError) as first:
        stale.optimize(cleanup_older_than=HOUR)
    message = str(first.value)
    assert (
        "Retryable commit conflict" in message and "preempted by concurrent transaction" in message
    )
    assert storage.is_commit_conflict(first.value)
    with pytest.raises(RuntimeError, match="Retryable commit conflict"):
        stale.optimize(cleanup_older_than=HOUR)  # the same handle loses again: it must move on

    calls = []

    def compact():
        calls.append(1)
        return stale.optimize(cleanup_older_than=HOUR)

    storage.with_commit_retry(compact, table=stale)
    assert len(calls) == 2  # one more conflict, then a compaction planned on the latest version
    _assert_exactly(db_uri, {0: 0, 1: 1, 2: 0, 3: 0})
    assert not storage.is_commit_conflict(
        RuntimeError("lance error: Invalid user input: no column x")
    )
    assert not storage.is_commit_conflict(ValueError("conflict"))


@pytest.mark.filterwarnings("ignore:optimize.cleanup_older_than=0")
def test_parallel_partition_writers_and_housekeeping_lose_no_write(
    tmp_path: Path, monkeypatch
) -> None:
    db_uri, shards, generations = str(tmp_path / "db"), 4, 12
    _table(db_uri, shards)
    conflicts: list[str] = []
    is_conflict = storage.is_commit_conflict

    def counting(exc: BaseException) -> bool:
        conflicts.append(str(exc)[:120])
        return is_conflict(exc)

    monkeypatch.setattr(storage, "is_commit_conflict", counting)
    errors: list[BaseException] = []
    start = threading.Barrier(shards + 1)
    writers_done = threading.Event()

    def writer(shard: int) -> None:
        table = storage.connect(db_uri).open_table("t")  # each writer its own connection
        try:
            start.wait()
            for gen in range(1, generations + 1):
                _write(table, shard, gen)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def housekeeper() -> None:
        try:
            start.wait()
            while not writers_done.is_set():
                optimize_table(db_uri, "t", HOUR)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(shards)]
    keeper = threading.Thread(target=housekeeper)
    for thread in [*threads, keeper]:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    writers_done.set()
    keeper.join(timeout=120)
    assert not errors, f"a writer or the housekeeper failed: {errors[0]!r}"
    _assert_exactly(db_uri, dict.fromkeys(range(shards), generations))
    optimize_table(db_uri, "t", timedelta(0))
    _assert_exactly(db_uri, dict.fromkeys(range(shards), generations))
    kinds = Counter("compaction lost" if "Rewrite transaction" in c else c for c in conflicts)
    print(f"{len(conflicts)} commit conflicts retried: {dict(kinds)}")
