"""Compaction and cleanup of old LanceDB versions: a job, a weekly schedule, and a sensor
that starts it as soon as incremental runs have left a table with too many fragments.

A separate job (not an asset) because it changes no data, only its layout; it runs in one
process and takes a few seconds on a small index. Versions younger than the grace period
stay, so runs and searches in flight keep working. A write that commits while it compacts
makes the compaction lose its commit; it retries on the latest version.
"""

from datetime import timedelta

import dagster as dg

from indexer_core.storage.housekeeping import crowded_tables, optimize_index
from orchestration.config import load as load_config
from orchestration.resources import CodeIndexResource
from orchestration.sensors import DEFAULT_STATUS

_settings = load_config()
HOUSEKEEPING_CRON = _settings.housekeeping_cron
CROWDED_INTERVAL_SECONDS = _settings.housekeeping_interval
MAX_FRAGMENTS = _settings.housekeeping_fragments
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class HousekeepingConfig(dg.Config):
    grace_minutes: int = 60


@dg.op(description="Compacts every index table and deletes versions older than the grace period.")
def optimize_tables(
    context: dg.OpExecutionContext, config: HousekeepingConfig, code_index: CodeIndexResource
):
    report = optimize_index(
        code_index.db_uri,
        timedelta(minutes=config.grace_minutes),
        code_index.cache_stale_floor,
    )
    for t in report.tables:
        context.log.info(
            f"{t.table}: versions {t.versions_before} -> {t.versions_after}, "
            f"{t.bytes_before / 1e6:.1f} MB -> {t.bytes_after / 1e6:.1f} MB in {t.seconds:.1f}s"
        )
    cache = report.cache
    if cache is not None:
        context.log.info(
            f"embedding cache: {cache.live} live, {cache.stale} stale; "
            f"kept {cache.kept} stale, pruned {cache.pruned} (oldest first)"
        )
    context.add_output_metadata(
        {
            "bytes_freed": report.bytes_freed,
            "versions_after": {t.table: t.versions_after for t in report.tables},
            "cache_rows_pruned": cache.pruned if cache is not None else 0,
            "cache_stale_rows_kept": cache.kept if cache is not None else 0,
        }
    )


@dg.job(
    executor_def=dg.in_process_executor,
    description="LanceDB compaction and cleanup of old versions.",
)
def housekeeping_job():
    optimize_tables()


weekly_housekeeping = dg.ScheduleDefinition(
    name="weekly_housekeeping",
    job=housekeeping_job,
    cron_schedule=HOUSEKEEPING_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Compact tables and clean up old versions "
    "(weekly by default; CODE_INDEX_HOUSEKEEPING_CRON).",
)


@dg.sensor(
    job=housekeeping_job,
    minimum_interval_seconds=CROWDED_INTERVAL_SECONDS,
    default_status=DEFAULT_STATUS,
    description=f"Starts housekeeping when a table has more than {MAX_FRAGMENTS} fragments "
    "(CODE_INDEX_HOUSEKEEPING_FRAGMENTS), i.e. after a large run or many small ones.",
)
def housekeeping_when_crowded(context: dg.SensorEvaluationContext, code_index: CodeIndexResource):
    crowded = crowded_tables(code_index.db_uri, MAX_FRAGMENTS)
    if not crowded:
        return dg.SkipReason(f"no table has more than {MAX_FRAGMENTS} fragments")
    active = context.instance.get_runs(
        dg.RunsFilter(job_name=housekeeping_job.name, statuses=_ACTIVE), limit=1
    )
    if active:
        return dg.SkipReason(f"housekeeping run {active[0].run_id} is still going")
    state = ",".join(f"{name}={count}" for name, count in sorted(crowded.items()))
    return dg.RunRequest(run_key=f"crowded:{state}", tags={"code-index/crowded": state})
