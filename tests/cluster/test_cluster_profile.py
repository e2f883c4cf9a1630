"""The cluster profile end to end on real services: chunk steps on a CPU Celery worker, two
embedding consumers on a `gpu` worker, instance storage on Postgres, step outputs, compute
logs and LanceDB on S3. Each test indexes a fresh database and compares it with the same
corpus indexed by the local multiprocess profile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import dagster as dg
import numpy as np
import pytest

from indexer_core.storage.lancedb_import import import_lancedb
from tests.cluster.services import PROJECT, descendants

pytestmark = pytest.mark.cluster
lancedb = import_lancedb()
CONSUMER = "embed_as_chunks_land"


def _index(cluster, corpus, db: str, *extra: str, wait: bool = True):
    """`code-index index` on the submitting host (its own Dagster home) through the profile."""
    env = cluster.process_env(cluster.home("home-submit"), CODE_INDEX_DB=db)
    cmd = [sys.executable, "-m", "orchestration.cli", "index", str(corpus), "--name", "corpus"]
    proc = subprocess.Popen(
        [*cmd, "-q", *extra],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def _instance(cluster) -> dg.DagsterInstance:
    """A reader of the shared Postgres event log (no S3 needed to read events)."""
    home = cluster.root / "home-reader"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {cluster.pg_url}\ntelemetry:\n  enabled: false\n"
    )
    return dg.DagsterInstance.from_config(str(home))


def _tables(db: str, cluster=None) -> tuple[dict, dict]:
    options = None
    if cluster is not None:
        options = {
            "aws_endpoint": cluster.s3_endpoint,
            "allow_http": "true",
            "aws_region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
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
    chunks, vectors = _tables(db, cluster)
    want_chunks, want_vectors = _tables(local_index)
    assert chunks == want_chunks  # ids, ranges and content
    assert vectors.keys() == want_vectors.keys() == chunks.keys()
    worst = max(float(np.abs(vectors[k] - want_vectors[k]).max()) for k in vectors)
    assert worst < 1e-4


def _runs(instance) -> list:
    return instance.get_runs(filters=dg.RunsFilter(job_name="index_job"))


def _materialized(instance, run_id: str, asset: str) -> Counter:
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return Counter(
        e.dagster_event.event_specific_data.materialization.partition
        for e in entries
        if e.dagster_event.event_specific_data.materialization.asset_key == dg.AssetKey(asset)
    )


def _step_pids(instance, run_id: str) -> dict[str, int]:
    return {
        e.dagster_event.step_key: e.dagster_event.pid
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    }


def test_the_cluster_profile_indexes_like_the_local_one(cluster, corpus, local_index) -> None:
    db = "s3://code-index/lancedb-first"
    code, out = _index(cluster, corpus, db)
    assert code == 0, out
    _assert_same_as_local(db, cluster, local_index)
    instance = _instance(cluster)
    run = _runs(instance)[0]
    partitions = [f"corpus|s{i:02d}" for i in range(8)]
    # Every partition's materializations are in the Postgres event log, vectors exactly once.
    assert _materialized(instance, run.run_id, "chunks") == Counter(partitions)
    assert _materialized(instance, run.run_id, "vectors") == Counter(partitions)
    # Chunk steps ran on the CPU worker, both consumers on the gpu worker.
    pids = _step_pids(instance, run.run_id)
    gpu, cpu = descendants(cluster.gpu_worker.pid), descendants(cluster.cpu_worker.pid)
    consumers = {k: p for k, p in pids.items() if k.split(".")[-1].startswith(CONSUMER)}
    assert len(consumers) == 2 and set(consumers.values()) <= gpu
    assert {p for k, p in pids.items() if "chunk_shard" in k} <= cpu
    # Each partition was embedded by one consumer: the counts add up to the table.
    entries = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    counted = 0
    for e in entries:
        mat = e.dagster_event.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey("vectors"):
            counted += mat.metadata["chunks"].value
    assert counted == len(_tables(db, cluster)[1])
    # Compute logs went to S3, where any host can read them.
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=cluster.s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    for prefix in ("compute-logs/", "step-outputs/"):  # step outputs crossed hosts there too
        listed = s3.list_objects_v2(Bucket="code-index", Prefix=prefix)
        assert listed.get("KeyCount", 0) > 0, prefix


def test_two_runs_of_the_same_partitions_leave_no_duplicates(cluster, corpus, local_index) -> None:
    db = "s3://code-index/lancedb-concurrent"
    first = _index(cluster, corpus, db, "--force", wait=False)
    second = _index(cluster, corpus, db, "--force", wait=False)
    for proc in (first, second):
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
    _assert_same_as_local(db, cluster, local_index)  # also asserts no duplicate rows


def test_a_consumer_killed_mid_run_leaves_its_partitions_to_the_other(
    cluster, corpus, local_index
) -> None:
    db = "s3://code-index/lancedb-killed"
    instance = _instance(cluster)
    before = {r.run_id for r in _runs(instance)}
    proc = _index(cluster, corpus, db, wait=False)
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        runs = [r for r in _runs(instance) if r.run_id not in before]
        if not runs:
            continue
        run_id = runs[0].run_id
        if _materialized(instance, run_id, "vectors"):  # embedding has begun
            pids = _step_pids(instance, run_id)
            victim = next(p for k, p in sorted(pids.items()) if CONSUMER in k)
    assert victim is not None, "the run ended before any partition was embedded"
    os.kill(victim, signal.SIGKILL)  # the worker process running one consumer
    out, _ = proc.communicate(timeout=600)
    partitions = [f"corpus|s{i:02d}" for i in range(8)]
    # The other consumer (or the killed step, retried in another process) took every
    # partition the dead one had not recorded; each is recorded once.
    assert _materialized(instance, run_id, "vectors") == Counter(partitions), out
    assert proc.returncode == 0, out
    _assert_same_as_local(db, cluster, local_index)
    code, out = _index(cluster, corpus, db)  # a rerun finds nothing left to do
    assert code == 0 and "up to date" in out, out
