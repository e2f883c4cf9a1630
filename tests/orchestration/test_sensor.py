"""The change sensor on a real instance, driven with build_sensor_context."""

from __future__ import annotations

import datetime
import json

import dagster as dg

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.partitioning import shard_of
from indexer_core.indexing.settings import IndexSettings
from orchestration.jobs import SHARDS_TAG
from orchestration.partitions import keys_for_repo, shard_count
from orchestration.resources import CodeIndexResource
from orchestration.schedules import daily_reconcile
from orchestration.sensors import repository_changes
from tests.conftest import git
from tests.orchestration.helpers import setup_repo


def _tick(instance, db_uri, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"code_index": CodeIndexResource(db_uri=db_uri)}
    )
    return repository_changes(context), context


def _index_all(db_uri, root, embedder) -> None:
    settings = IndexSettings(shards=shard_count())
    for shard in range(settings.shards):
        chunk_partition(db_uri, "demo", str(root), shard, settings)
        embed_partition(db_uri, "demo", shard, embedder)


def test_sensor_requests_only_changed_shards(dagster_home, db_uri, sample_repo, embedder) -> None:
    git(sample_repo, "init", "-q")
    git(sample_repo, "add", "-A")
    git(sample_repo, "commit", "-qm", "init")
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, sample_repo)
        # Never indexed: every shard with files is requested, in one run.
        result, _ = _tick(instance, db_uri)
        assert isinstance(result, dg.SensorResult) and len(result.run_requests) == 1
        _index_all(db_uri, sample_repo, embedder)
        # Indexed and unchanged: nothing to do.
        result, _ = _tick(instance, db_uri)
        assert isinstance(result, dg.SkipReason)
        # One edit: exactly that file's shard.
        (sample_repo / "src/app.py").write_text("def changed():\n    return 2\n")
        result, _ = _tick(instance, db_uri)
        (request,) = result.run_requests
        expected = keys_for_repo("demo", [shard_of("src/app.py", shard_count())])
        assert request.tags[SHARDS_TAG].split(",") == expected
        # A change this small runs its steps in the run's own process.
        assert request.run_config == {"execution": {"config": {"in_process": True}}}
        cursor = result.cursor
        # The same change is not requested twice while its run is pending.
        again, _ = _tick(instance, db_uri, cursor)
        assert isinstance(again, dg.SkipReason)
        assert json.loads(cursor)["demo"]


def test_sensor_sees_vectors_missing_for_the_model(
    dagster_home, db_uri, sample_repo, embedder
) -> None:
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, sample_repo)
        settings = IndexSettings(shards=shard_count())
        for shard in range(settings.shards):
            chunk_partition(db_uri, "demo", str(sample_repo), shard, settings)
        result, _ = _tick(instance, db_uri)  # chunks exist, vectors do not: still stale
        assert len(result.run_requests) == 1
        # Whole shards to embed: the step server's parallel steps, not the run's process.
        assert "execution" not in result.run_requests[0].run_config


def test_schedule_reconciles_every_repository(dagster_home, db_uri, sample_repo) -> None:
    with dg.DagsterInstance.get() as instance:
        setup_repo(instance, db_uri, sample_repo)
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.datetime(2026, 11, 26, 3),
            resources={"code_index": CodeIndexResource(db_uri=db_uri)},
        )
        (request,) = list(daily_reconcile(context))
        assert request.run_config["resources"]["code_index"]["config"]["rehash"] is True
        assert request.tags[SHARDS_TAG].split(",") == keys_for_repo("demo")


def test_sensor_registers_configured_repositories(
    dagster_home, db_uri, sample_repo, monkeypatch
) -> None:
    from indexer_core.storage import registry

    monkeypatch.setenv("CODE_INDEX_REPOS", f"configured={sample_repo}")
    with dg.DagsterInstance.get() as instance:
        result, _ = _tick(instance, db_uri)
        assert registry.repositories(db_uri) == {"configured": str(sample_repo.resolve())}
        (add,) = result.dynamic_partitions_requests
        assert list(add.partition_keys) == ["configured"]
        assert len(result.run_requests) == 1
