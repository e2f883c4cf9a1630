"""Configuration of the scale-out profiles without a cluster: the start-up checks (one bad
case each, named in the error), the Celery and Kubernetes executor configs, and several
embedding consumers sharing one run's partitions exactly once (flock claims, real tables)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import tables as storage
from orchestration import config, jobs, k8s, scale_out
from orchestration.embedding_consumer import (
    MIN_SLICE_CHUNKS,
    EmbeddingConsumer,
    Landed,
    SliceDone,
    partition_claims,
)
from orchestration.partitions import keys_for_repo
from orchestration.s3_client import ProcessS3Resource
from tests.conftest import write_tree
from tests.reliability.fakes import HashEmbedder

PROJECT = Path(__file__).resolve().parents[2]
S3_OK = {
    "CODE_INDEX_DB": "s3://bucket/db",
    "CODE_INDEX_STORAGE_OPTIONS": "aws_endpoint=http://127.0.0.1:9000;allow_http=true",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
}
MATCHING = {name: "0.29.27" for name in scale_out.INTEGRATIONS}


def _check(env: dict[str, str], versions=MATCHING) -> None:
    scale_out.check_configuration(config.load(env), versions, dagster_version="1.13.27")


def test_the_local_defaults_pass() -> None:
    _check({})
    _check({}, versions={})  # without the cluster extra, the local profile needs none of it


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CODE_INDEX_EXECUTOR": "dask"}, "CODE_INDEX_EXECUTOR"),
        ({"CODE_INDEX_EMBED_CONSUMERS": "0"}, "CODE_INDEX_EMBED_CONSUMERS"),
        ({"CODE_INDEX_EXECUTOR": "celery"}, "CODE_INDEX_CELERY_BROKER"),
        (
            {"CODE_INDEX_EXECUTOR": "celery", "CODE_INDEX_CELERY_BROKER": "redis://h:6379/0"},
            "CODE_INDEX_STEP_OUTPUTS",
        ),
        ({"CODE_INDEX_EXECUTOR": "k8s"}, "CODE_INDEX_STEP_OUTPUTS"),
        ({"CODE_INDEX_DB": "s3://bucket/db"}, "aws_access_key_id"),
        (
            {k: v for k, v in S3_OK.items() if k != "CODE_INDEX_STORAGE_OPTIONS"},
            "aws_endpoint",
        ),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_setting(env, named) -> None:
    with pytest.raises(scale_out.ConfigurationError, match=named):
        _check(env)


def test_an_object_store_with_credentials_and_endpoint_passes() -> None:
    _check(S3_OK)
    _check({"CODE_INDEX_DB": "s3://bucket/db", "AWS_PROFILE": "ci", "AWS_REGION": "eu-west-1"})


def test_integration_libraries_must_match_dagster() -> None:
    assert scale_out.matching_integration("1.13.27") == "0.29.27"
    with pytest.raises(scale_out.ConfigurationError, match="dagster-celery==0.29.26"):
        _check({}, versions={**MATCHING, "dagster-celery": "0.29.26"})
    with pytest.raises(scale_out.ConfigurationError, match="needs dagster-celery"):
        _check(
            {
                "CODE_INDEX_EXECUTOR": "celery",
                "CODE_INDEX_CELERY_BROKER": "redis://h/0",
                "CODE_INDEX_STEP_OUTPUTS": "s3://b/p",
            },
            versions={},
        )
    _check({}, versions=scale_out.installed_versions())  # what this environment installed


def test_several_consumers_on_an_object_store_need_postgres_locks() -> None:
    settings = config.load({**S3_OK, "CODE_INDEX_EMBED_CONSUMERS": "2"})
    scale_out.install(settings)
    try:
        with pytest.raises(scale_out.ConfigurationError, match="CODE_INDEX_LOCK_DSN"):
            scale_out.check_locks(settings, settings.lancedb_uri)
        scale_out.check_locks(settings, "/a/local/dir")  # flock works there
    finally:
        scale_out.install(config.load({}))
    assert storage.storage_options_for("s3://b/db") is None  # restored


def test_storage_options_reach_object_stores_only() -> None:
    scale_out.install(config.load(S3_OK))
    try:
        options = storage.storage_options_for("s3://bucket/db")
        assert options == {"aws_endpoint": "http://127.0.0.1:9000", "allow_http": "true"}
        assert storage.storage_options_for("/local/dir") is None
    finally:
        scale_out.install(config.load({}))


def test_a_code_location_with_a_bad_setting_fails_to_load_naming_it() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "CODE_INDEX_EXECUTOR": "celery"}
    env.pop("CODE_INDEX_CELERY_BROKER", None)
    done = subprocess.run(
        [sys.executable, "-c", "import orchestration.definitions"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "CODE_INDEX_CELERY_BROKER" in done.stderr


@pytest.mark.parametrize(("setting", "tick"), [(None, 0.1), ("0.25", 0.25)])
def test_the_celery_code_location_polls_its_steps_as_configured(setting, tick) -> None:
    """dagster-celery's loop sleeps a hard-coded second between passes; loading the celery
    profile sets the pause the run's executor takes from `CODE_INDEX_CELERY_POLL_SECONDS`."""
    code = (
        "import orchestration.definitions; from dagster_celery import core_execution_loop; "
        "print(core_execution_loop.TICK_SECONDS)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT),
        "CODE_INDEX_EXECUTOR": "celery",
        "CODE_INDEX_CELERY_BROKER": "redis://127.0.0.1:6379/0",
        "CODE_INDEX_STEP_OUTPUTS": "s3://bucket/steps",
    }
    env.pop("CODE_INDEX_CELERY_POLL_SECONDS", None)
    if setting:
        env["CODE_INDEX_CELERY_POLL_SECONDS"] = setting
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert float(done.stdout.strip().splitlines()[-1]) == tick


def test_a_pause_of_no_time_between_polls_is_refused_naming_the_setting() -> None:
    settings = config.load({"CODE_INDEX_CELERY_POLL_SECONDS": "0"})
    with pytest.raises(scale_out.ConfigurationError, match="CODE_INDEX_CELERY_POLL_SECONDS"):
        scale_out.check_configuration(settings, MATCHING, "1.13.27")


def test_the_celery_visibility_timeout_outlasts_a_run_and_matches_the_workers() -> None:
    settings = config.load({"CODE_INDEX_CELERY_BROKER": "redis://h:6379/0"})
    executor = jobs.celery_config(settings)["config_source"]
    workers = yaml.safe_load((PROJECT / "deploy/cluster/celery.yaml").read_text())
    worker_source = workers["execution"]["config"]["config_source"]
    timeout = executor["broker_transport_options"]["visibility_timeout"]
    assert timeout == worker_source["broker_transport_options"]["visibility_timeout"]
    assert timeout >= 6 * 3600  # far above an index run of the largest repository here
    assert worker_source["worker_prefetch_multiplier"] == 1
    assert executor["task_retry_on_worker_lost"] is worker_source["task_retry_on_worker_lost"]
    assert executor["task_annotations"] == worker_source["task_annotations"]


def test_the_k8s_profile_gives_each_consumer_a_gpu_pod() -> None:
    """Builds the job as a k8s deployment loads it and checks the executor's per-step config."""
    code = (
        "import json; from orchestration.definitions import defs; "
        "job = defs.resolve_job_def('index_job'); ex = job.executor_def; "
        "ops = [n.name for n in job.graph.node_defs[0].node_defs]; "
        "print(json.dumps([ex.name, ex.config_schema.resolve_config({}).value, ops]))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT),
        "CODE_INDEX_EXECUTOR": "k8s",
        "CODE_INDEX_STEP_OUTPUTS": "s3://bucket/steps",
        "CODE_INDEX_EMBED_CONSUMERS": "2",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    import json

    from dagster_k8s import k8s_job_executor
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    name, resolved, ops = json.loads(done.stdout.strip().splitlines()[-1])
    assert name == "k8s"
    executor_config = resolved["config"]
    from dagster._config import validate_config

    checked = validate_config(  # the executor's own schema
        k8s_job_executor.config_schema.config_type, executor_config
    )
    assert checked.success, checked.errors
    per_step = executor_config["per_step_k8s_config"]
    assert sorted(per_step) == ["embed_as_chunks_land", "embed_as_chunks_land_2"]
    assert set(per_step) <= set(ops)  # keyed by op names the job really has
    for step in per_step.values():
        parsed = UserDefinedDagsterK8sConfig.from_dict(step)
        assert parsed.container_config["resources"]["limits"] == {k8s.GPU_RESOURCE: 1}
        assert parsed.pod_spec_config["node_selector"] == k8s.GPU_NODE_SELECTOR
        assert parsed.pod_spec_config["tolerations"] == [k8s.GPU_TOLERATION]
    assert {"key": "code-index/embedder", "value": "1", "limit": 2} in executor_config[
        "tag_concurrency_limits"
    ]


def test_the_helm_values_run_the_code_location_on_postgres_with_the_k8s_profile() -> None:
    values = yaml.safe_load((PROJECT / "deploy/k8s/values.yaml").read_text())
    assert values["postgresql"]["enabled"] is True
    deployment = values["dagster-user-deployments"]["deployments"][0]
    env = {item["name"]: item.get("value") for item in deployment["env"]}
    assert env["CODE_INDEX_EXECUTOR"] == "k8s"
    assert env["CODE_INDEX_STEP_OUTPUTS"].startswith("s3://")
    assert env["CODE_INDEX_DB"].startswith("s3://")
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


class _SharedRun:
    """One run's event log as several consumers see it: every partition lands at once (in key
    order, with the chunk counts given as their sizes), and every consumer sees every
    `vectors` record and slice observation (appended under a lock)."""

    def __init__(self, keys: list[str], sizes: dict[str, int] | None = None) -> None:
        self.keys = keys
        self.sizes = sizes or {}
        self.recorded: list[tuple[str, int, object]] = []  # (partition, consumer, report)
        self.slices: list[tuple[SliceDone, int]] = []  # (slice, consumer)
        self.lock = threading.Lock()

    def landings(self):
        run = self

        class Landings:
            def __init__(self) -> None:
                self.pending = set(run.keys)
                self.seen = self.seen_slices = 0

            def poll(self):
                landed = sorted(self.pending)
                self.pending.clear()
                with run.lock:
                    embedded = [k for k, _, _ in run.recorded[self.seen :]]
                    slices = [done for done, _ in run.slices[self.seen_slices :]]
                    self.seen, self.seen_slices = len(run.recorded), len(run.slices)
                sizes = {k: run.sizes.get(k, 0) for k in landed}
                return Landed(landed=landed, embedded=embedded, sizes=sizes, slices=slices)

            def recorded(self, key):
                with run.lock:
                    return any(k == key for k, _, _ in run.recorded)

            def slices_written(self, key):
                with run.lock:
                    return [done for done, _ in run.slices if done.key == key]

        return Landings()

    def record(self, consumer: int):
        def record(key, report) -> None:
            with self.lock:
                self.recorded.append((key, consumer, report))

        return record

    def observe(self, consumer: int):
        def observe(key, index, count, report) -> None:
            with self.lock:
                self.slices.append((SliceDone(key, index, count, report), consumer))

        return observe

    def consume(self, db_uri: str, index: int, consumers: int, embedder=None):
        consumer = EmbeddingConsumer(
            db_uri,
            embedder or HashEmbedder(delay=0.05),
            self.record(index),
            poll_seconds=0.01,
            claim=partition_claims(db_uri),
            consumers=consumers,
            observe=self.observe(index),
        )
        try:
            return consumer.run(self.landings())
        finally:
            consumer.close()


def _run_together(run: _SharedRun, db_uri: str, consumers: int) -> None:
    threads = [
        threading.Thread(target=run.consume, args=(db_uri, i, consumers)) for i in range(consumers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def _assert_one_vector_per_chunk(db_uri: str) -> int:
    db = storage.connect(db_uri)
    ids = db.open_table(storage.VECTORS).to_arrow().column("chunk_id").to_pylist()
    assert len(ids) == len(set(ids)) == db.open_table(storage.CHUNKS).count_rows()
    return len(ids)


def test_two_consumers_share_a_run_and_embed_each_partition_once(tmp_path, db_uri) -> None:
    files = {f"pkg/m{i}.py": f"def f{i}(x):\n    return x * {i}\n" for i in range(40)}
    root = write_tree(tmp_path / "repo", files)
    keys = keys_for_repo("demo", list(range(8)))
    for shard in range(8):
        chunk_partition(db_uri, "demo", str(root), shard, IndexSettings(shards=8))
    run = _SharedRun(keys)
    _run_together(run, db_uri, 2)
    recorded = [key for key, _, _ in run.recorded]
    assert sorted(recorded) == keys  # every partition once, whichever consumer took it
    assert {consumer for _, consumer, _ in run.recorded} == {0, 1}  # both took a share
    _assert_one_vector_per_chunk(db_uri)


def test_the_largest_ready_partition_is_claimed_first(tmp_path, db_uri) -> None:
    """Largest first, not landing order: the partitions left when consumers run out of work
    are the small ones, so they finish together."""
    files = {f"pkg/m{i}.py": f"def f{i}(x):\n    return x - {i}\n" for i in range(16)}
    root = write_tree(tmp_path / "repo", files)
    keys = keys_for_repo("demo", list(range(4)))
    for shard in range(4):
        chunk_partition(db_uri, "demo", str(root), shard, IndexSettings(shards=4))
    sizes = dict(zip(keys, [3, 20, 7, 12]))  # below any slicing: claimed whole
    run = _SharedRun(keys, sizes)
    run.consume(db_uri, 0, consumers=2, embedder=HashEmbedder())
    assert [key for key, _, _ in run.recorded] == sorted(keys, key=lambda k: -sizes[k])
    _assert_one_vector_per_chunk(db_uri)


def _one_large_partition(tmp_path, db_uri, functions: int = 80) -> tuple[str, int]:
    """One partition holding every chunk: the case where one consumer would do all the work."""
    files = {f"pkg/m{i}.py": f"def f{i}(x):\n    return x * {i} + 1\n" for i in range(functions)}
    root = write_tree(tmp_path / "repo", files)
    report = chunk_partition(db_uri, "demo", str(root), 0, IndexSettings(shards=1))
    assert report.chunks_total >= 2 * MIN_SLICE_CHUNKS
    return keys_for_repo("demo", [0])[0], report.chunks_total


def test_consumers_share_a_large_partition_in_slices_and_record_it_once(tmp_path, db_uri) -> None:
    key, chunks = _one_large_partition(tmp_path, db_uri)
    run = _SharedRun([key], {key: chunks})
    _run_together(run, db_uri, 2)
    slices = sorted((done.index, consumer) for done, consumer in run.slices)
    assert [index for index, _ in slices] == [0, 1]  # each slice written once
    assert {consumer for _, consumer in slices} == {0, 1}  # by both consumers
    assert [k for k, _, _ in run.recorded] == [key]  # the partition recorded once
    (report,) = [report for _, _, report in run.recorded]
    assert report.chunks == report.embedded == chunks == _assert_one_vector_per_chunk(db_uri)


def test_a_consumer_that_dies_mid_partition_leaves_whole_slices_for_another(
    tmp_path, db_uri
) -> None:
    key, chunks = _one_large_partition(tmp_path, db_uri)
    run = _SharedRun([key], {key: chunks})

    class DiesOnSecondSlice(HashEmbedder):
        calls = 0

        def encode(self, texts):
            DiesOnSecondSlice.calls += 1
            if DiesOnSecondSlice.calls == 2:
                raise RuntimeError("device lost")
            return super().encode(texts)

    with pytest.raises(RuntimeError, match="device lost"):
        run.consume(db_uri, 0, consumers=2, embedder=DiesOnSecondSlice())
    (first,) = [done for done, _ in run.slices]  # one slice written whole, none recorded
    assert not run.recorded
    vectors = storage.connect(db_uri).open_table(storage.VECTORS)
    assert vectors.count_rows() == first.report.embedded == first.report.chunks
    run.consume(db_uri, 1, consumers=2)  # another consumer (or the rerun) takes the rest
    (second,) = [done for done, consumer in run.slices if consumer == 1]
    assert second.index != first.index and second.report.embedded == chunks - first.report.chunks
    assert [(k, consumer) for k, consumer, _ in run.recorded] == [(key, 1)]
    assert run.recorded[0][2].chunks == chunks == _assert_one_vector_per_chunk(db_uri)


def test_slice_claims_share_the_partition_and_exclude_its_whole_claim(db_uri) -> None:
    claims = partition_claims(db_uri)
    first, second = claims.slice("demo|s00", 0), claims.slice("demo|s00", 1)
    assert first is not None and second is not None  # slices side by side
    assert claims.slice("demo|s00", 0) is None  # one holder per slice
    assert claims("demo|s00") is None  # no whole-partition writer meanwhile
    first.release()
    second.release()
    whole = claims("demo|s00")
    assert whole is not None and claims.slice("demo|s00", 1) is None
    whole.release()


def test_step_outputs_on_s3_reuse_one_client_per_process_and_settings() -> None:
    """Each step builds its IO manager anew; the boto3 client behind it is made once."""
    settings = config.load({**S3_OK, "CODE_INDEX_STEP_OUTPUTS": "s3://bucket/steps"})
    first = jobs.step_output_resources(settings)["io_manager"].s3_resource
    again = jobs.step_output_resources(settings)["io_manager"].s3_resource
    other = ProcessS3Resource(endpoint_url="http://127.0.0.1:1")
    assert first is not again
    assert first.get_client() is again.get_client()
    assert other.get_client() is not first.get_client()
