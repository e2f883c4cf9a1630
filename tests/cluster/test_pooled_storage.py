"""The cluster profile's Dagster storage (`deploy/cluster/dagster.yaml`): Dagster's Postgres
storage, with one kept connection per process instead of a new one per query."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
import sqlalchemy

from orchestration.pg_storage import PooledPostgresStorage
from tests.cluster.services import DEPLOY

pytestmark = pytest.mark.cluster


def _sessions(pg_url: str) -> int:
    """Connections Postgres has accepted into the database so far (its own count)."""
    engine = sqlalchemy.create_engine(pg_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sqlalchemy.text(
                    "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                )
            ).scalar_one()
    finally:
        engine.dispose()


def _record_events(instance: dg.DagsterInstance, count: int) -> str:
    run = instance.create_run_for_job(
        dg.GraphDefinition(name="pooled_probe", node_defs=[]).to_job()
    )
    for n in range(count):
        instance.report_engine_event(f"probe {n}", run)
    return run.run_id


def test_instances_of_a_process_record_events_over_one_kept_connection(
    cluster, tmp_path, monkeypatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", cluster.pg_url)
    monkeypatch.setenv("DAGSTER_S3_LOG_BUCKET", "code-index")
    monkeypatch.setenv("AWS_ENDPOINT_URL", cluster.s3_endpoint)
    first = dg.DagsterInstance.from_config(str(home))
    second = dg.DagsterInstance.from_config(str(home))
    assert first.get_ref().storage_data.class_name == PooledPostgresStorage.__name__
    _record_events(first, 2)  # the engine's one connection is open from here on

    before = _sessions(cluster.pg_url)
    run_ids = [_record_events(first, 20), _record_events(second, 20)]
    opened = _sessions(cluster.pg_url) - before - 1  # less the count's own connection

    # Dagster's own engines connect once per query: hundreds for these 40 events.
    assert opened <= 2
    for instance, run_id in zip((first, second), run_ids, strict=True):
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        probes = [e for e in events if (e.dagster_event.message or "").startswith("probe")]
        assert len(probes) == 20  # and they are all there, through either instance
