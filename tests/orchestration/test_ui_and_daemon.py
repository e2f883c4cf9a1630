"""The UI path and the daemon loop, end to end: real webserver and daemon processes on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from indexer_core.storage import tables as storage
from orchestration.partitions import keys_for_repo
from orchestration.runner import run_index
from tests.conftest import git
from tests.orchestration.helpers import materializations, setup_repo

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _services(env: dict, webserver: bool):
    procs = []
    logs = []
    try:
        port = _free_port()
        if webserver:
            log = open(Path(env["DAGSTER_HOME"]) / "webserver.log", "w")  # noqa: SIM115 - closed in finally
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "dagster-webserver"),
                        "-w",
                        "workspace.yaml",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                    ],
                    cwd=PROJECT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        log = open(Path(env["DAGSTER_HOME"]) / "daemon.log", "w")  # noqa: SIM115 - closed in finally
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=PROJECT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        yield port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


def _graphql(port: int, query: str, variables: dict, deadline: float) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    while True:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(2)


def _env(dagster_home: Path, db_uri: str, **extra: str) -> dict:
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "CODE_INDEX_DB": db_uri,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(PROJECT),
        **extra,
    }


@pytest.mark.slow
def test_backfill_launched_through_graphql(dagster_home, db_uri, sample_repo) -> None:
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, sample_repo, "demo")
    keys = keys_for_repo("demo")
    env = _env(dagster_home, db_uri, CODE_INDEX_SENSORS="off")
    with _services(env, webserver=True) as port:
        deadline = time.time() + 600
        params = {
            "assetSelection": [{"path": [name]} for name in ("files", "chunks", "vectors")],
            "partitionNames": keys,
        }
        reply = _graphql(port, LAUNCH_BACKFILL, {"params": params}, deadline)
        result = reply["data"]["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", reply
        backfill_id = result["backfillId"]
        with dg.DagsterInstance.get() as instance:
            while time.time() < deadline:
                backfill = instance.get_backfill(backfill_id)
                if backfill.status.value not in ("REQUESTED",):
                    break
                time.sleep(3)
            assert backfill.status.value in ("COMPLETED", "COMPLETED_SUCCESS"), backfill.status
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            assert (
                len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
            )  # one run for the range
            recorded = {
                e.dagster_event.event_specific_data.materialization.partition
                for e in materializations(instance, runs[0].run_id, "vectors")
            }
            assert recorded == set(keys)
    db = storage.connect(db_uri)
    assert (
        db.open_table(storage.VECTORS).count_rows()
        == db.open_table(storage.CHUNKS).count_rows()
        > 0
    )


@pytest.mark.slow
def test_daemon_sensor_reindexes_an_edit_in_a_git_checkout(
    dagster_home, db_uri, sample_repo
) -> None:
    git(sample_repo, "init", "-q")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "init")
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, sample_repo, "demo")
        assert run_index(instance, keys_for_repo("demo"), db_uri=db_uri).success
        before = {r.run_id for r in instance.get_runs()}
    (sample_repo / "src/app.py").write_text("def freshly_added_function():\n    return 'new'\n")
    env = _env(dagster_home, db_uri, CODE_INDEX_SENSOR_INTERVAL="5")
    with _services(env, webserver=False):
        deadline = time.time() + 600
        with dg.DagsterInstance.get() as instance:
            new_run = None
            while time.time() < deadline and new_run is None:
                runs = [
                    r
                    for r in instance.get_runs()
                    if r.run_id not in before and r.job_name == "index_job"
                ]
                done = [r for r in runs if r.is_finished]
                new_run = done[0] if done else None
                time.sleep(3)
            assert new_run is not None and new_run.status == dg.DagsterRunStatus.SUCCESS
            assert (
                len(new_run.tags["code-index/shards"].split(",")) == 1
            )  # only the edited file's shard
            # an edit this small runs its steps in the run worker's own process
            assert new_run.run_config["execution"]["config"]["in_process"] is True
            contents = (
                storage.connect(db_uri)
                .open_table(storage.CHUNKS)
                .to_arrow()
                .column("content")
                .to_pylist()
            )
            assert any("freshly_added_function" in c for c in contents)
            # Later ticks see no change and request nothing more.
            time.sleep(12)
            index_runs = [
                r
                for r in instance.get_runs()
                if r.run_id not in before and r.job_name == "index_job"
            ]
            assert len(index_runs) == 1
