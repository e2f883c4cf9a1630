"""Jobs and their executor: chunk steps in parallel, one embedding consumer per GPU."""

from __future__ import annotations

import dataclasses
import json
import time

import dagster as dg

from indexer_core.storage import registry
from orchestration import config
from orchestration.assets.index import EMBEDDER_TAG, REGISTER_TAG, SHARDS_TAG
from orchestration.launch import start_method
from orchestration.partitions import index_partitions, keys_for_repo
from orchestration.scale_out import check_configuration


def celery_config(settings: config.Config) -> dict:
    """The celery executor's config: the broker, and a visibility timeout above the longest
    run, so Redis never hands a long embedding step (or one waiting behind it) to a second
    worker. `deploy/cluster/celery.yaml` gives the workers the same values (a test compares)."""
    return {
        "broker": settings.celery_broker,
        "backend": settings.celery_backend or settings.celery_broker,
        "config_source": {
            "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
            "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
            "worker_prefetch_multiplier": 1,
            "task_acks_late": False,
            # A step whose worker process dies is retried in another (Celery 5.5+), as the
            # multiprocess executor's rerun would: dagster-celery 0.29.27 otherwise spins
            # forever on a task that raised WorkerLostError instead of ending the run.
            "task_retry_on_worker_lost": True,
            "task_annotations": {"execute_plan": {"default_retry_delay": 2}},  # not 180 s
        },
    }


def poll_celery_every(seconds: float) -> None:
    """How long the Celery executor's loop sleeps between its passes over the steps.

    dagster-celery sleeps a fixed second (`TICK_SECONDS`, no setting) after every pass, even
    the one that saw the last step finish: each dependency level of the job (plan -> chunk
    steps, consumer -> checks) then waits up to a second to be submitted, and every run
    ends up to a second after its last step. A pass is one result-backend read per running
    step, so a tenth of a second costs the run's process next to nothing. The loop reads the
    module's value on every pass, which is why it is set there, in the process that loads
    this code location and so runs the executor (the CLI's, or a run worker's)."""
    from dagster_celery import core_execution_loop

    core_execution_loop.TICK_SECONDS = seconds


def make_executor(settings: config.Config) -> dg.ExecutorDefinition:
    """The executor `CODE_INDEX_EXECUTOR` names. Every one caps the embedding consumers in its
    own terms: a tag limit (multiprocess, k8s), the `gpu` queue's worker processes (celery)."""
    consumers = settings.embed_consumers
    limits = [{"key": EMBEDDER_TAG, "value": "1", "limit": consumers}]
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        poll_celery_every(settings.celery_poll_seconds)
        return celery_executor.configured(celery_config(settings))
    if settings.executor == "k8s":
        from orchestration.k8s import k8s_executor

        return k8s_executor(settings, limits)
    # One chunk step per core plus the embedding consumers (they mostly wait, or use a GPU).
    multiprocess = {
        "max_concurrent": settings.max_concurrent + consumers - 1,
        "tag_concurrency_limits": limits,
        "start_method": start_method(settings.start_method),
    }

    def choose(run: dict) -> dict:
        return {"in_process": {}} if run["in_process"] else {"multiprocess": multiprocess}

    return dg.multi_or_in_process_executor.configured(
        choose,
        config_schema={
            "in_process": dg.Field(
                bool,
                default_value=False,
                description="Run every step in the run's own process, one after another: "
                "for a small change, cheaper than starting the step server and its steps.",
            )
        },
    )


def in_process_run_config() -> dict:
    """Run config that runs the index job's steps in the run's own process (`code-index
    index` and the sensor pass it for a change of at most `CODE_INDEX_IN_PROCESS_BYTES`)."""
    return {"execution": {"config": {"in_process": True}}}


def step_output_resources(settings: config.Config) -> dict:
    """`io_manager` on S3 when `CODE_INDEX_STEP_OUTPUTS` is an `s3://` URI: the plan's list
    and the mapped steps' keys then reach a worker on any host (boto reads `AWS_*`, including
    `AWS_ENDPOINT_URL`). Otherwise Dagster's default, files under the Dagster home."""
    if not settings.step_outputs.startswith("s3://"):
        return {}
    from dagster_aws.s3 import S3PickleIOManager

    from orchestration.s3_client import ProcessS3Resource

    bucket, _, prefix = settings.step_outputs[len("s3://") :].partition("/")
    endpoint = settings.aws().get("AWS_ENDPOINT_URL")
    return {
        "io_manager": S3PickleIOManager(
            s3_resource=ProcessS3Resource(endpoint_url=endpoint),
            s3_bucket=bucket,
            s3_prefix=prefix.strip("/") or "dagster",
        )
    }


_settings = config.load()
check_configuration(_settings)
index_executor = make_executor(_settings)

index_job = dg.define_asset_job(
    "index_job",
    selection=dg.AssetSelection.assets("files", "chunks", "vectors"),
    partitions_def=index_partitions,
    executor_def=index_executor,
    description="Index the selected partitions: chunk every shard in parallel, "
    "embed each as it lands.",
)


def partition_tags(repo: str, shards: list[int]) -> dict[str, str]:
    """Run tags selecting these shards of one repository.

    The range tags cover first..last shard (Dagster runs over one range); the shards tag
    narrows the run to exactly the listed ones, so untouched shards in between are skipped.
    """
    keys = keys_for_repo(repo, sorted(shards))
    return {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
        SHARDS_TAG: ",".join(keys),
    }


def register_tags(repo: str, root: str) -> dict[str, str]:
    """Run tags asking the run's planning step to register `repo` at `root` first, so that
    whoever starts the run needs no LanceDB of its own (the CLI saves its import, a second
    of CPU, while the step server imports it anyway). The request's time goes with it: a
    later registration wins over a re-execution of this run (`registry.register`)."""
    asked = registry.Request(repo, root, time.time())
    return {REGISTER_TAG: json.dumps(dataclasses.asdict(asked))}
