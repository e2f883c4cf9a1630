"""A step that waits on a busy worker longer than the broker's visibility timeout is
delivered twice by Redis; with the profile's timeout (deploy/cluster/celery.yaml) it runs
once. Both on real Redis and dagster-celery workers: the profile's own CPU worker, and for
the control a worker with a 2 s timeout on a broker database of its own (a worker restores
every unacknowledged message of its database older than its timeout, whoever reserved it).

The control's worker starts while the profile's case runs; one wait after both catches any
second delivery. The jobs run one after the other: two celery-executor runs in threads of
one process hang on submission."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.cluster import slow_job
from tests.cluster.services import DEPLOY

pytestmark = pytest.mark.cluster
REDELIVERY_WAIT = 4  # seconds after the runs for a second delivery, were there one


def _short_timeout_yaml(path: Path) -> Path:
    """The profile's worker settings with a 2 s visibility timeout (the control)."""
    short = yaml.safe_load((DEPLOY / "celery.yaml").read_text())
    short["execution"]["config"]["config_source"]["broker_transport_options"] = {
        "visibility_timeout": 2,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    path.write_text(yaml.safe_dump(short))
    return path


def _execute(instance, job_name: str, broker: str, config_yaml: Path, marker: Path) -> str:
    """Runs the job through the celery executor; its waiting step adds a line to `marker`
    per execution. Returns the run id."""
    source = yaml.safe_load(config_yaml.read_text())["execution"]["config"]["config_source"]
    marker.touch()
    job = getattr(slow_job, job_name)
    waiting = next(node.name for node in job.graph.node_defs if node.name.startswith("waiting"))
    result = dg.execute_job(
        dg.reconstructable(job),
        instance=instance,
        run_config={
            "execution": {"config": {"broker": broker, "backend": broker, "config_source": source}},
            "ops": {waiting: {"config": {"marker": str(marker)}}},
        },
    )
    assert result.success
    return result.run_id


def _waited(instance, run_id: str) -> float:
    """Seconds from the first long step's start to the waiting step's start."""
    starts = {
        e.dagster_event.step_key: e.timestamp
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    }
    waiting = next(t for k, t in starts.items() if k.startswith("waiting"))
    return waiting - min(t for k, t in starts.items() if k.startswith("long"))


@pytest.fixture(scope="module")
def executions(cluster, tmp_path_factory) -> dict[str, tuple[int, float]]:
    """Per job: executions of the waiting step, and how long it waited behind the others."""
    work = tmp_path_factory.mktemp("visibility")
    short = _short_timeout_yaml(work / "celery-short.yaml")
    profile_broker = cluster.env["CODE_INDEX_CELERY_BROKER"]
    short_broker = profile_broker.rsplit("/", 1)[0] + "/1"
    cluster.start_worker(
        "slow-short", "slow-short", 1, short, CODE_INDEX_CELERY_BROKER=short_broker
    )
    cases = [
        ("configured_job", profile_broker, DEPLOY / "celery.yaml"),  # the CPU worker's queue
        ("short_timeout_job", short_broker, short),
    ]
    found = {}
    with dg.DagsterInstance.from_config(str(cluster.reader_home())) as instance:
        for job_name, broker, config_yaml in cases:
            if job_name == "short_timeout_job":
                cluster.wait_for_workers()
            marker = work / f"{job_name}.executions"
            found[job_name] = (marker, _execute(instance, job_name, broker, config_yaml, marker))
        time.sleep(REDELIVERY_WAIT)  # a second delivery, if any, runs right after the first
        return {
            name: (len(marker.read_text().split()), _waited(instance, run_id))
            for name, (marker, run_id) in found.items()
        }


def test_a_step_waiting_behind_long_ones_runs_once(executions) -> None:
    runs, waited = executions["configured_job"]
    assert waited >= slow_job.LONG_SECONDS - 1  # reserved, unacknowledged, that long
    assert runs == 1


def test_a_short_visibility_timeout_would_run_it_twice(executions) -> None:
    """The control: the same wait, a worker whose broker restores unacknowledged messages
    after 2 s, so the test above would see a second delivery if the timeout were short."""
    runs, waited = executions["short_timeout_job"]
    assert waited >= slow_job.LONG_SECONDS - 1
    assert runs >= 2
