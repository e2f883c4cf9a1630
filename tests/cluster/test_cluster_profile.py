"""The cluster profile end to end on real services: chunk steps on a CPU Celery worker, two
embedding consumers on a `gpu` worker, instance storage on Postgres, step outputs, compute
logs and LanceDB on S3, compared with the same corpus indexed by the local multiprocess
profile.

Process start-ups dominate on 2 cores, so one scenario carries every assertion: two runs of
the same partitions start together on a fresh database, and in the first to embed a
partition the worker process of one consumer is killed (SIGKILL). Both must succeed with
the local profile's rows and no duplicate; the killed run must still record each partition
once, in Postgres, with its steps on the right queues' workers and its logs and step outputs
on S3; a rerun must find nothing stale.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pytest

from indexer_core.storage.lancedb_import import import_lancedb
from tests.cluster.conftest import SHARDS
from tests.cluster.services import BUCKET, PROJECT, descendants

pytestmark = pytest.mark.cluster
lancedb = import_lancedb()
CONSUMER = "embed_as_chunks_land"
PARTITIONS = [f"corpus|s{i:02d}" for i in range(SHARDS)]


def _index(cluster, corpus, db: str, *extra: str) -> subprocess.Popen:
    """`code-index index` on the submitting host (its own Dagster home) through the profile."""
    env = cluster.process_env(cluster.home("home-submit"), CODE_INDEX_DB=db)
    cmd = [sys.executable, "-m", "orchestration.cli", "index", str(corpus), "--name", "corpus"]
    return subprocess.Popen(
        [*cmd, "-q", *extra],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


@pytest.fixture(scope="module")
def reader(cluster):
    """The shared Postgres event log, read as any host would (no S3 needed for events)."""
    with dg.DagsterInstance.from_config(str(cluster.reader_home())) as instance:
        yield instance


def _tables(db: str, options: dict | None = None) -> tuple[dict, dict]:
    conn = lancedb.connect(db, storage_options=options)
    chunks = conn.open_table("chunks").to_arrow().to_pylist()
    vectors = conn.open_table("vectors").to_arrow().to_pylist()
    chunk_ids = [r["chunk_id"] for r in chunks]
    vector_ids = [r["chunk_id"] for r in vectors]
    assert len(chunk_ids) == len(set(chunk_ids)), "duplicate chunk rows"
    assert len(vector_ids) == len(set(vector_ids)), "duplicate vector rows"
    return (
        {r["chunk_id"]: (r["path"], r["start_line"], r["end_line"], r["content"]) for r in chunks},
        {r["chunk_id"]: np.asarray(r["vector"]) for r in vectors},
    )


def _assert_same_as_local(db: str, cluster, local_index: str) -> None:
    chunks, vectors = _tables(db, cluster.lancedb_options())
    want_chunks, want_vectors = _tables(local_index)
    assert chunks == want_chunks  # ids, ranges and content
    assert vectors.keys() == want_vectors.keys() == chunks.keys()
    worst = max(float(np.abs(vectors[k] - want_vectors[k]).max()) for k in vectors)
    assert worst < 1e-4


def _new_runs(reader, before: set[str]) -> list[dg.DagsterRun]:
    runs = reader.get_runs(filters=dg.RunsFilter(job_name="index_job"))
    return [r for r in runs if r.run_id not in before]


def _materializations(reader, run_id: str, asset: str) -> list:
    entries = reader.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    found = (e.dagster_event.event_specific_data.materialization for e in entries)
    return [m for m in found if m.asset_key == dg.AssetKey(asset)]


def _materialized(reader, run_id: str, asset: str) -> Counter:
    return Counter(m.partition for m in _materializations(reader, run_id, asset))


def _step_starts(reader, run_id: str) -> list[tuple[str, int]]:
    return [
        (e.dagster_event.step_key, e.dagster_event.pid)
        for e in reader.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    ]


def _running_consumers(reader, run_id: str) -> list[tuple[str, int]]:
    """(step key, pid) of the run's consumers that have started and not yet ended."""
    ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    ended = {e.dagster_event.step_key for e in reader.all_logs(run_id, of_type=ends)}
    starts = _step_starts(reader, run_id)
    return sorted(s for s in starts if CONSUMER in s[0] and s[0] not in ended)


@dataclass
class Scenario:
    db: str
    killed_run: str  # the run one of whose consumers was killed
    other_run: str  # the run of the same partitions alongside it
    victim_step: str
    victim_pid: int
    outputs: list[tuple[int, str]]  # (exit status, output) of each `code-index index`


@pytest.fixture(scope="module")
def scenario(cluster, corpus, local_index, reader) -> Scenario:
    """Two `code-index index --force` of the corpus at once on a fresh database; once a run
    has recorded its first `vectors`, the worker process of one of its consumers is killed."""
    db = f"s3://{BUCKET}/lancedb"
    before = {r.run_id for r in _new_runs(reader, set())}
    procs = [_index(cluster, corpus, db, "--force") for _ in range(2)]
    killed = victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        if all(proc.poll() is not None for proc in procs):
            break
        time.sleep(0.2)
        for run in _new_runs(reader, before):
            if _materialized(reader, run.run_id, "vectors"):  # embedding has begun
                running = _running_consumers(reader, run.run_id)
                if running:
                    killed, victim = run.run_id, running[0]
                    break
    if victim is None:
        outputs = [_finish(proc) for proc in procs]
        pytest.fail(f"the runs ended before a consumer could be killed: {outputs}")
    os.kill(victim[1], signal.SIGKILL)  # the worker process running one consumer
    outputs = [_finish(proc) for proc in procs]
    runs = {r.run_id for r in _new_runs(reader, before)}
    assert len(runs) == 2, runs
    (other,) = runs - {killed}
    return Scenario(db, killed, other, victim[0], victim[1], outputs)


def test_both_runs_succeed_with_the_local_profiles_rows_and_no_duplicates(
    scenario, cluster, local_index, reader
) -> None:
    for code, out in scenario.outputs:
        assert code == 0 and "checks: 3 of 3 passed" in out, out
    _assert_same_as_local(scenario.db, cluster, local_index)  # also: no duplicate rows
    # The two runs really overlapped, each over every partition.
    first, second = reader.get_run_records(
        dg.RunsFilter(run_ids=[scenario.killed_run, scenario.other_run])
    )
    assert first.start_time < second.end_time and second.start_time < first.end_time
    assert _materialized(reader, scenario.other_run, "chunks") == Counter(PARTITIONS)
    assert _materialized(reader, scenario.other_run, "vectors") == Counter(PARTITIONS)


def test_each_partition_is_in_the_postgres_event_log_and_recorded_once(
    scenario, cluster, reader
) -> None:
    run_id = scenario.killed_run
    assert _materialized(reader, run_id, "files") == Counter(PARTITIONS)
    assert _materialized(reader, run_id, "chunks") == Counter(PARTITIONS)
    # Whichever consumer took it, the dead one's included, each partition is recorded once,
    # and the recorded row counts add up to the table.
    assert _materialized(reader, run_id, "vectors") == Counter(PARTITIONS)
    recorded = sum(m.metadata["chunks"].value for m in _materializations(reader, run_id, "vectors"))
    assert recorded == len(_tables(scenario.db, cluster.lancedb_options())[1])


def test_steps_ran_on_their_queues_workers_and_the_killed_one_was_retried(
    scenario, cluster, reader
) -> None:
    gpu, cpu = descendants(cluster.gpu_worker.pid), descendants(cluster.cpu_worker.pid)
    for run_id in (scenario.killed_run, scenario.other_run):
        starts = _step_starts(reader, run_id)
        consumers = [(k, p) for k, p in starts if k.split(".")[-1].startswith(CONSUMER)]
        assert {k for k, _ in consumers} == {
            f"code_index_graph.{CONSUMER}",
            f"code_index_graph.{CONSUMER}_2",
        }
        assert {p for _, p in consumers if p != scenario.victim_pid} <= gpu
        chunk_pids = {p for k, p in starts if "chunk_shard" in k}
        assert chunk_pids and chunk_pids <= cpu
    # Celery ran the killed consumer's step again in another process
    # (`task_retry_on_worker_lost`); it found the partitions the other had recorded.
    starts = _step_starts(reader, scenario.killed_run)
    retried = [p for k, p in starts if k == scenario.victim_step]
    assert len(retried) == 2 and retried[-1] != scenario.victim_pid


def test_compute_logs_and_step_outputs_are_on_s3(scenario, cluster) -> None:
    s3 = cluster.s3()
    for prefix in ("compute-logs/", "step-outputs/"):  # any host reads them there
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        assert listed.get("KeyCount", 0) > 0, prefix


def test_a_rerun_finds_nothing_stale(scenario, cluster, corpus) -> None:
    code, out = _finish(_index(cluster, corpus, scenario.db))
    assert code == 0 and "up to date" in out, out
