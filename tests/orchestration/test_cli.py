"""The `code-index` command end to end, as a user runs it, in a temporary home."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import registry
from indexer_core.storage import tables as storage

PROJECT = Path(__file__).resolve().parents[2]


def _cli(
    tmp_path: Path, *args: str, extra: dict | None = None, command: list[str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CODE_INDEX_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        # fewer step processes: this test is about the command, not sharding
        "CODE_INDEX_SHARDS": "2",
        "CODE_INDEX_CHUNK_STEPS": "1",  # both partitions in one chunk step
        "CODE_INDEX_ONNX_CACHE": str(tmp_path / "onnx"),  # its own: the run must make it
        **(extra or {}),
    }
    env.pop("DAGSTER_HOME", None)
    env.pop("CODE_INDEX_DB", None)
    return subprocess.run(
        [*(command or [sys.executable, "-m", "orchestration.cli"]), *args],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_index_search_status_end_to_end(tmp_path, sample_repo, embedder) -> None:
    out = _cli(tmp_path, "index", str(sample_repo), "--name", "sample", "-q")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "succeeded" in out.stdout
    # The embedding step left the model's ONNX export, so the searches below start without torch.
    assert list((tmp_path / "onnx").glob("*/model.onnx"))
    hits = json.loads(
        _cli(
            tmp_path, "search", "parse a header line into key and value", "--json", "-k", "3"
        ).stdout
    )
    assert hits and hits[0]["path"] == "src/app.py"
    assert {"path", "start_line", "end_line", "kind", "name", "score"} <= set(hits[0])
    text_hits = json.loads(
        _cli(tmp_path, "search", "HttpClient", "--mode", "text", "--json").stdout
    )
    assert text_hits[0]["path"] == "src/util.js"
    explained = json.loads(
        _cli(tmp_path, "search", "parse_header", "--json", "--explain", "-k", "2").stdout
    )
    assert explained[0]["name"] == "parse_header" and "vector" in explained[0]["why"]["rankings"]
    assert explained[0]["end_line"] - explained[0]["start_line"] < 60 and explained[0]["content"]
    filtered = json.loads(_cli(tmp_path, "search", "hello", "--language", "go", "--json").stdout)
    assert filtered and all(h["path"].endswith(".go") for h in filtered)
    status = json.loads(_cli(tmp_path, "status", "--json").stdout)
    repo = status["repositories"]["sample"]
    assert repo["files"] == 5 and repo["chunks"] == repo["vectors"] > 0
    # The run is recorded in the Dagster home the UI reads, with its checks.
    assert "checks: 3 of 3 passed" in out.stdout
    home = tmp_path / "home" / "dagster_home"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert (
            len(runs) == 1
            and runs[0].job_name == "index_job"
            and runs[0].status == dg.DagsterRunStatus.SUCCESS
        )
        # One chunk step, the one that starts with the run, took both partitions and recorded
        # each as it landed; the planning step had no other group to fan out.
        landed = instance.all_logs(
            runs[0].run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        chunked = {
            e.dagster_event.event_specific_data.materialization.partition: e.step_key
            for e in landed
            if e.dagster_event.event_specific_data.materialization.asset_key
            == dg.AssetKey("chunks")
        }
        assert sorted(chunked) == ["sample|s00", "sample|s01"]
        assert set(chunked.values()) == {"code_index_graph.chunk_shard_first"}
        starts = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)
        fanned_out = [e.step_key for e in starts if ".chunk_shard[" in (e.step_key or "")]
        assert fanned_out == ["code_index_graph.chunk_shard[none]"]
    # Nothing changed: the sensor's change detection says so and no run starts.
    again = _cli(tmp_path, "index", str(sample_repo), "--name", "sample", "-q")
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr[-2000:]
    # One file edited: a run of its shard alone, small enough to run in the command's own
    # process (every step in one pid); the same edit with that switched off uses step
    # processes; --force always does.
    (sample_repo / "src" / "app.py").write_text("def parse_header(line):\n    return line\n")
    edited = _cli(tmp_path, "index", str(sample_repo), "--name", "sample", "-q")
    assert edited.returncode == 0 and "1/1 partitions chunked" in edited.stdout, edited.stdout
    (sample_repo / "src" / "app.py").write_text("def parse_header(text):\n    return text\n")
    stepped = _cli(
        tmp_path,
        *("index", str(sample_repo), "--name", "sample", "-q"),
        extra={"CODE_INDEX_IN_PROCESS_BYTES": "0"},
    )
    assert stepped.returncode == 0 and "1/1 partitions chunked" in stepped.stdout, stepped.stdout
    (sample_repo / "src" / "util.js").unlink()
    (sample_repo / "src" / "new.py").write_text("def fresh(value):\n    return value * 2\n")
    edited_again = _cli(tmp_path, "index", str(sample_repo), "--name", "sample", "-q")
    assert edited_again.returncode == 0, edited_again.stdout + edited_again.stderr[-2000:]
    # The incremental runs left what indexing the tree from scratch gives.
    rows, vectors = _snapshot(str(tmp_path / "home" / "lancedb"))
    scratch = str(tmp_path / "scratch")
    settings = IndexSettings(shards=2)
    registry.register(scratch, "sample", str(sample_repo))
    for shard in range(settings.shards):
        chunk_partition(scratch, "sample", str(sample_repo), shard, settings)
        embed_partition(scratch, "sample", shard, embedder)
    expected_rows, expected_vectors = _snapshot(scratch)
    assert rows == expected_rows and vectors.keys() == expected_vectors.keys()
    for chunk_id, vector in vectors.items():
        assert float(vector @ expected_vectors[chunk_id]) > 1 - 1e-4, chunk_id
    # Step processes print nothing on the command's terminal.
    for noise in ("STEP_WORKER_STARTED", "DEBUG", "STEP_START"):
        assert noise not in stepped.stdout + stepped.stderr
    forced = _cli(tmp_path, "index", str(sample_repo), "--name", "sample", "-q", "--force")
    assert forced.returncode == 0 and "2/2 partitions chunked" in forced.stdout, forced.stdout
    # A person reads results in rank order, each with the repository it is from once the
    # index holds several.
    shutil.copytree(sample_repo, tmp_path / "copy")
    copied = _cli(tmp_path, "index", str(tmp_path / "copy"), "--name", "copy", "-q")
    assert copied.returncode == 0, copied.stdout + copied.stderr[-2000:]
    plain = _cli(tmp_path, "search", "parse a header line into key and value", "-k", "4").stdout
    ranks = [float(r) for r in re.findall(r"rank_score=([0-9.]+)", plain)]
    assert len(ranks) == 4 and ranks == sorted(ranks, reverse=True), plain
    assert "[sample] src/app.py" in plain and "[copy] src/app.py" in plain, plain
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()[1:]  # newest first: copy, forced, edited again, stepped, ...
        assert len(runs) == 5
        pids = [len(_step_pids(instance, run.run_id)) for run in runs]
        # A tree this small runs in one process even forced or new; only `stepped` did not.
        assert pids[2] > 1 and pids[:2] + pids[3:] == [1, 1, 1, 1], pids
        assert runs[1].run_config["execution"]["config"]["in_process"] is True
        assert "execution" not in runs[2].run_config


@pytest.mark.slow
def test_a_stepped_run_registers_through_the_run_and_the_command_never_imports_lancedb(
    tmp_path, sample_repo
) -> None:
    """The command only drives the run: the run's planning step registers the repository
    (its tag asks it to), and the summary is read in a process forked from the step server,
    which imported LanceDB already; the command's own process never pays for that import."""
    probe = (
        "import sys\nfrom orchestration import cli\ncode = cli.main(sys.argv[1:])\n"
        "print('lancedb imported:', 'lancedb' in sys.modules)\nsys.exit(code)"
    )
    out = _cli(
        tmp_path,
        *("index", str(sample_repo), "--name", "sample", "-q"),
        extra={"CODE_INDEX_IN_PROCESS_BYTES": "0"},  # step processes, as a large tree gets
        command=[sys.executable, "-c", probe],
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "lancedb imported: False" in out.stdout
    assert "sample (" in out.stdout and "5 files" in out.stdout, out.stdout  # the summary
    assert registry.repositories(str(tmp_path / "home" / "lancedb")) == {
        "sample": str(sample_repo.resolve())
    }
    with dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster_home")) as instance:
        (run,) = instance.get_runs()
        asked = json.loads(run.tags["code-index/register"])
        assert asked["repo"] == "sample" and asked["root"] == str(sample_repo.resolve())
        assert len(_step_pids(instance, run.run_id)) > 1


def _step_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    return {e.dagster_event.pid for e in starts}


def _snapshot(db_uri: str) -> tuple[set, dict]:
    """The chunks' rows and each chunk's vector, checked to agree with each other."""
    db = storage.connect(db_uri)
    chunks = db.open_table(storage.CHUNKS).to_arrow()
    columns = ("repo", "path", "start_line", "end_line", "content", "embed_text")
    rows = set(zip(*(chunks.column(c).to_pylist() for c in columns)))
    table = db.open_table(storage.VECTORS).to_arrow()
    vectors = dict(
        zip(table.column("chunk_id").to_pylist(), np.asarray(table.column("vector").to_pylist()))
    )
    assert len(vectors) == table.num_rows == chunks.num_rows
    assert set(vectors) == set(chunks.column("chunk_id").to_pylist())
    return rows, vectors


def test_missing_path_is_a_clear_error(tmp_path) -> None:
    out = _cli(tmp_path, "index", str(tmp_path / "nope"))
    assert out.returncode == 2 and "nope" in out.stderr and "does not exist" in out.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path) -> None:
    """`code-index status | head -0`: the pipe's reader is gone before the command writes."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "CODE_INDEX_HOME": str(tmp_path / "home")}
    env.pop("CODE_INDEX_DB", None)
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "status"],
        cwd=tmp_path,
        env=env,
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
    )
    os.close(write)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr
