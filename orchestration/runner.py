"""Running the index job from Python (the CLI and tests) on a persistent Dagster instance.

Runs go through `execute_job` on a reconstructable job, so the multiprocess executor starts
each step in its own process and every run is recorded in `$DAGSTER_HOME` for the UI.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from indexer_core.storage import registry
from orchestration import config, migration_scripts
from orchestration.jobs import in_process_run_config, partition_tags, register_tags
from orchestration.launch import ensure_dagster_home, prewarm_step_server
from orchestration.partitions import keys_for_repo, repo_partitions

RUN_ID_TAG = "code-index/request"
PROGRESS_SECONDS = 0.5
QUIET_READ_SECONDS = 2.0


def index_job_def() -> dg.JobDefinition:
    """Module-level so `reconstructable` can rebuild the job in each step process."""
    from orchestration.definitions import defs

    return defs.resolve_job_def("index_job")


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    partitions: list[str]
    chunked: list[str] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)  # "asset:check" -> passed
    seconds: float = 0.0


def add_repository_partition(instance: dg.DagsterInstance, repo: str) -> None:
    """Add the repository's dynamic partition, which any run over its shards needs."""
    if not instance.has_dynamic_partition(repo_partitions.name, repo):
        instance.add_dynamic_partitions(repo_partitions.name, [repo])


def run_index(
    instance: dg.DagsterInstance,
    partitions: list[str],
    db_uri: str | None = None,
    extra_tags: dict[str, str] | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
    quiet: bool = True,
    in_process: bool = False,
) -> RunOutcome:
    """Materialize the given partitions (contiguous, or narrowed by `extra_tags`) in one run;
    with `in_process`, its steps run one after another in this process (see
    `launch.runs_in_process`)."""
    request = uuid.uuid4().hex
    tags = {
        "dagster/asset_partition_range_start": partitions[0],
        "dagster/asset_partition_range_end": partitions[-1],
        RUN_ID_TAG: request,
        **(extra_tags or {}),
    }
    run_config: dict = {}
    if db_uri:
        run_config["resources"] = {"code_index": {"config": {"db_uri": db_uri}}}
    if quiet:
        run_config["loggers"] = {"console": {"config": {"log_level": "WARNING"}}}
    if in_process:
        run_config.update(in_process_run_config())
    started = time.perf_counter()
    if not in_process:
        prewarm_step_server()  # a no-op when the caller started it earlier
    result: dict = {}

    def execute() -> None:
        try:
            # Not entered as a context: that would set up the job's resources in this process
            # once the run has ended, only to load step outputs, which nothing here reads.
            outcome = dg.execute_job(
                dg.reconstructable(index_job_def),
                instance=instance,
                tags=tags,
                run_config=run_config,
                raise_on_error=False,
            )
            result["run_id"] = outcome.run_id
            result["success"] = outcome.success
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the progress loop ends
            result["error"] = exc

    worker = threading.Thread(target=execute, daemon=True)
    worker.start()
    run_id = None
    landed = _Landed()
    every = PROGRESS_SECONDS if on_progress else QUIET_READ_SECONDS
    while worker.is_alive():
        # A join returns the moment the run ends, so the caller hears of it at once; in
        # between, this thread wakes only to read the run's new records (twice a second
        # with progress to show), so that few are left to read once it has ended, when
        # nothing else runs. Waking more often would take CPU from the run's own steps.
        worker.join(every)
        if not worker.is_alive():
            break
        if run_id is None:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_ID_TAG: request}), limit=1)
            run_id = runs[0].run_id if runs else None
        if run_id:
            landed.read_new(instance, run_id)
            if on_progress:
                on_progress(len(landed.chunks), len(landed.vectors), len(partitions))
    if "error" in result:
        raise result["error"]
    run_id = result["run_id"]
    landed.read_new(instance, run_id)
    seen_chunks, seen_vectors = landed.chunks, landed.vectors
    if on_progress:
        on_progress(len(seen_chunks), len(seen_vectors), len(partitions))
    failures = [
        f"{e.dagster_event.step_key}: {e.dagster_event.event_specific_data.error.message.strip()}"
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    checks = {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
        for e in (
            entry.dagster_event.event_specific_data
            for entry in instance.all_logs(
                run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        )
    }
    return RunOutcome(
        run_id=run_id,
        success=bool(result["success"]),
        partitions=partitions,
        chunked=sorted(seen_chunks),
        embedded=sorted(seen_vectors),
        failures=failures,
        checks=checks,
        seconds=time.perf_counter() - started,
    )


@dataclass
class _Landed:
    """The partitions whose chunks and vectors a run has recorded, read incrementally: the
    progress bars poll twice a second, and a run's records carry much metadata each."""

    chunks: set[str] = field(default_factory=set)
    vectors: set[str] = field(default_factory=set)
    cursor: str | None = None

    def read_new(self, instance: dg.DagsterInstance, run_id: str) -> None:
        while True:
            page = instance.get_records_for_run(
                run_id=run_id,
                cursor=self.cursor,
                of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
                limit=1000,
            )
            for record in page.records:
                mat = record.event_log_entry.dagster_event.event_specific_data.materialization
                name = mat.asset_key.to_user_string()
                if name == "chunks":
                    self.chunks.add(mat.partition)
                elif name == "vectors":
                    self.vectors.add(mat.partition)
            self.cursor = page.cursor
            if not page.has_more:
                return


def index_repository(
    root: str,
    db_uri: str | None = None,
    name: str | None = None,
    shards: list[int] | None = None,
    **kwargs,
) -> RunOutcome:
    """Register one repository and index it through the Dagster job: every shard, or only
    `shards` (those a change detection found stale)."""
    ensure_dagster_home()
    db_uri = db_uri or config.load().lancedb_uri
    repo = name or registry.name_for_path(root)
    # The run's planning step registers the repository (`register_tags`), so this process
    # opens no LanceDB for it; the partition, which the run's own plan reads, is added here.
    tags = register_tags(repo, registry.checked_root(repo, root))
    keys = keys_for_repo(repo, sorted(shards) if shards else None)
    if shards:
        tags.update(partition_tags(repo, shards))
    tags.update(kwargs.pop("extra_tags", {}))
    migration_scripts.install()  # before the instance opens its storages (a small run's first)
    with dg.DagsterInstance.get() as instance:
        add_repository_partition(instance, repo)
        return run_index(instance, keys, db_uri=db_uri, extra_tags=tags, **kwargs)
