"""The Dagster pipeline on a real instance in a temporary DAGSTER_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from indexer_core.indexing.partitioning import shard_of
from indexer_core.storage import tables as storage
from orchestration.assets.index import REGISTER_TAG, code_index_assets
from orchestration.checks import check_results
from orchestration.partitions import keys_for_repo, shard_count
from orchestration.resources import CodeIndexResource
from orchestration.runner import run_index
from tests.conftest import SAMPLE_FILES, write_tree
from tests.orchestration.helpers import materializations, metadata_of, partition_of, setup_repo

PROJECT = Path(__file__).resolve().parents[2]


def _corpus(root: Path, files: int = 48) -> Path:
    """Several real-looking files per shard, so every chunk step has work."""
    tree = dict(SAMPLE_FILES)
    for i in range(files):
        tree[f"pkg/mod_{i:03d}.py"] = (
            f'"""Module {i}."""\n\n\nclass Handler{i}:\n    def handle(self, request):\n'
            f"        return request.get('value_{i}')\n\n\ndef helper_{i}(x):\n    return x * {i}\n"
        )
    return write_tree(root, tree)


def test_one_partition_through_materialize(dagster_home, db_uri, sample_repo) -> None:
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, sample_repo)
        key = keys_for_repo("demo")[0]
        result = dg.materialize(
            [code_index_assets],
            partition_key=key,
            instance=instance,
            resources={"code_index": CodeIndexResource(db_uri=db_uri)},
        )
        assert result.success
        chunk_records = materializations(instance, result.run_id, "chunks")
        vector_records = materializations(instance, result.run_id, "vectors")
        assert [partition_of(e) for e in chunk_records] == [key]
        assert [partition_of(e) for e in vector_records] == [key]
        meta = metadata_of(chunk_records[0])
        for field in (
            "files",
            "bytes_parsed",
            "skipped_files",
            "seconds",
            "mb_per_second",
            "dagster/partition_row_count",
        ):
            assert field in meta
        db = storage.connect(db_uri)
        chunks = db.open_table(storage.CHUNKS).count_rows()
        assert chunks == meta["dagster/partition_row_count"]
        assert db.open_table(storage.VECTORS).count_rows() == chunks


SPAWN_SHARDS = 8  # spawned steps take seconds each: a few partitions, one step each


def _index_with_spawned_steps(tmp_path: Path, root: Path, db_uri: str) -> None:
    """`code-index index` in a fresh process whose executor spawns each step (seconds to start).

    Forked from the preloaded server (the default), this small corpus is chunked before the
    model has even loaded; spawned steps reproduce what a large repository looks like, where
    chunking outlasts the model load, so the overlap must show.
    """
    env = {
        **os.environ,
        "CODE_INDEX_START_METHOD": "spawn",
        "CODE_INDEX_MAX_CONCURRENT": "3",
        "CODE_INDEX_SHARDS": str(SPAWN_SHARDS),
        "CODE_INDEX_CHUNK_STEPS": str(SPAWN_SHARDS),  # one step per partition
        "CODE_INDEX_IN_PROCESS_BYTES": "0",  # step processes even for a corpus this small
        "CODE_INDEX_DB": db_uri,
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "index", str(root), "--name", "demo", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.slow
def test_multiprocess_run_embeds_while_chunking(dagster_home, db_uri, tmp_path) -> None:
    root = _corpus(tmp_path / "corpus")
    _index_with_spawned_steps(tmp_path, root, db_uri)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.status == dg.DagsterRunStatus.SUCCESS
        chunk_records = materializations(instance, run.run_id, "chunks")
        vector_records = materializations(instance, run.run_id, "vectors")
        assert len(chunk_records) == len(vector_records) == SPAWN_SHARDS
        # Pipelined: the first partition's vectors were recorded before the last partition's chunks.
        first_vectors = min(e.timestamp for e in vector_records)
        last_chunks = max(e.timestamp for e in chunk_records)
        assert first_vectors < last_chunks
        # Chunk steps ran in separate processes: the first from the run's start, the others
        # fanned out by the planning step.
        starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        pids = {e.dagster_event.pid for e in starts if e.step_key and ".chunk_shard" in e.step_key}
        assert len(pids) == SPAWN_SHARDS
        # The checks ran in the index run itself (no daemon, no second job) and passed.
        evaluations = [
            e.dagster_event.event_specific_data
            for e in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        assert {e.check_name for e in evaluations} == {
            "one_vector_per_chunk",
            "vectors_sane",
            "unique_chunk_ids",
        }
        assert all(e.passed for e in evaluations)
        skipped = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SKIPPED)
        assert not skipped
        # The same checks fail on a corrupted table.
        vectors = storage.connect(db_uri).open_table(storage.VECTORS)
        victim = vectors.to_arrow().column("chunk_id")[0].as_py()
        vectors.delete(f"chunk_id = '{victim}'")
        row = vectors.to_arrow().slice(0, 1)
        zero = pa.FixedSizeListArray.from_arrays(
            pa.array([0.0] * 384, pa.float32()), 384
        )  # LanceDB refuses NaN
        row = row.set_column(row.schema.get_field_index("vector"), "vector", zero)
        vectors.merge_insert("chunk_id").when_matched_update_all().execute(row)
        results = check_results(CodeIndexResource(db_uri=db_uri))
        failed = {r.check_name for r in results if not r.passed}
        assert failed == {"one_vector_per_chunk", "vectors_sane"}


def test_missing_repository_fails_with_its_name(dagster_home, db_uri, tmp_path) -> None:
    root = write_tree(tmp_path / "gone", {"a.py": "a = 1\n"})
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, root, "gone")
        for child in root.iterdir():
            child.unlink()
        root.rmdir()
        result = dg.materialize(
            [code_index_assets],
            partition_key=keys_for_repo("gone")[0],
            instance=instance,
            resources={"code_index": CodeIndexResource(db_uri=db_uri)},
            raise_on_error=False,
        )
        assert not result.success
        failures = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        assert any(
            str(root) in e.dagster_event.event_specific_data.error.to_string() for e in failures
        )


def test_a_failed_plan_fails_the_embedding_consumer_too(dagster_home, db_uri, tmp_path) -> None:
    """A stepped run whose planning step fails (asked to register the repository at a path
    that is gone) fails its embedding consumer as well, naming the partitions that were not
    chunked, rather than the consumer succeeding with nothing embedded: "re-execute from
    failure" then runs the consumer again for what the re-executed chunk steps land."""
    root = write_tree(tmp_path / "repo", {"a.py": "def a():\n    return 1\n"})
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, root, "demo")
        asked = {"repo": "demo", "root": str(tmp_path / "gone"), "requested_at": time.time()}
        outcome = run_index(
            instance,
            keys_for_repo("demo"),
            db_uri=db_uri,
            extra_tags={REGISTER_TAG: json.dumps(asked)},
        )
        assert not outcome.success
        failed = {
            e.step_key: e.dagster_event.event_specific_data.error.message
            for e in instance.all_logs(outcome.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        }
    assert {"code_index_graph.plan_partitions", "code_index_graph.chunk_shard_first"} <= set(
        failed
    )
    consumer = failed["code_index_graph.embed_as_chunks_land"]
    assert "planning step" in consumer and f"{shard_count()} partition(s) not chunked" in consumer


def test_definitions_validate_on_workspace(dagster_home) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful" in out.stdout + out.stderr


@pytest.mark.slow
def test_dagster_asset_materialize_command_one_partition(dagster_home, db_uri, sample_repo) -> None:
    """The README's `dagster asset materialize` invocation, run as a user runs it."""
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, sample_repo)
    shard = shard_of("src/app.py", shard_count())
    key = keys_for_repo("demo")[shard]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "orchestration.definitions",
            "--select",
            "files,chunks,vectors",
            "--partition",
            key,
        ],
        cwd=PROJECT,
        env={**os.environ, "CODE_INDEX_DB": db_uri, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.status == dg.DagsterRunStatus.SUCCESS
        recorded = {partition_of(e) for e in materializations(instance, run.run_id, "vectors")}
        assert recorded == {key}
    db = storage.connect(db_uri)
    shards = set(db.open_table(storage.CHUNKS).to_arrow().column("shard").to_pylist())
    assert (
        shards == {shard}
        and db.open_table(storage.VECTORS).count_rows()
        == db.open_table(storage.CHUNKS).count_rows()
    )
