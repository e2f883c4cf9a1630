"""A step that waits on a busy worker longer than the broker's visibility timeout is
delivered twice by Redis; with the profile's timeout (deploy/cluster/celery.yaml) it runs
once. Both on real Redis and dagster-celery workers (a broker database of their own)."""

from __future__ import annotations

import time

import dagster as dg
import pytest
import yaml

from tests.cluster import slow_job
from tests.cluster.services import DEPLOY

pytestmark = pytest.mark.cluster


def _executions(cluster, job_name: str, queue: str, config_yaml) -> int:
    shared = cluster.env["CODE_INDEX_CELERY_BROKER"]
    env_broker = shared.rsplit("/", 1)[0] + "/1"  # unacked messages are per database
    cluster.env["CODE_INDEX_CELERY_BROKER"] = env_broker
    try:
        cluster.worker(f"{queue}-worker", queue, 1, config_yaml=config_yaml)
    finally:
        cluster.env["CODE_INDEX_CELERY_BROKER"] = shared
    source = yaml.safe_load(config_yaml.read_text())["execution"]["config"]["config_source"]
    marker = cluster.root / f"{job_name}.executions"
    marker.touch()
    home = cluster.root / "home-reader"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.execute_job(
            dg.reconstructable(getattr(slow_job, job_name)),
            instance=instance,
            run_config={
                "execution": {
                    "config": {"broker": env_broker, "backend": env_broker, "config_source": source}
                },
                "ops": {
                    f"waiting_step_{queue.replace('-', '_')}": {"config": {"marker": str(marker)}}
                },
            },
        )
        assert result.success
    time.sleep(4)  # a second delivery, if any, runs right after the first
    return len(marker.read_text().split())


def test_a_step_waiting_behind_a_long_one_runs_once(cluster, tmp_path) -> None:
    from tests.cluster.test_cluster_profile import _instance

    _instance(cluster)  # the reader home, on the shared Postgres
    assert _executions(cluster, "configured_job", "slow", DEPLOY / "celery.yaml") == 1


def test_a_short_visibility_timeout_would_run_it_twice(cluster, tmp_path) -> None:
    """The control: the same job, a worker whose broker restores unacknowledged messages
    after 2 s, so the test above would see a second delivery if the timeout were short."""
    from tests.cluster.test_cluster_profile import _instance

    _instance(cluster)
    short = yaml.safe_load((DEPLOY / "celery.yaml").read_text())
    short["execution"]["config"]["config_source"]["broker_transport_options"] = {
        "visibility_timeout": 2,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    path = tmp_path / "celery-short.yaml"
    path.write_text(yaml.safe_dump(short))
    assert _executions(cluster, "short_timeout_job", "slow-short", path) >= 2
