"""Weekly compaction and cleanup of old LanceDB versions, as a job and its schedule.

A separate job (not an asset) because it changes no data, only its layout; it runs in one
process and takes a few seconds on a small index. Versions younger than the grace period
stay, so runs and searches in flight keep working.
"""

import os
from datetime import timedelta

import dagster as dg

from indexer_core.housekeeping import optimize_index
from orchestration.resources import CodeIndexResource

HOUSEKEEPING_CRON = os.environ.get("CODE_INDEX_HOUSEKEEPING_CRON", "0 4 * * 0")


class HousekeepingConfig(dg.Config):
    grace_minutes: int = 60


@dg.op(description="Compacts every index table and deletes versions older than the grace period.")
def optimize_tables(context: dg.OpExecutionContext, config: HousekeepingConfig, code_index: CodeIndexResource):
    report = optimize_index(code_index.db_uri, timedelta(minutes=config.grace_minutes))
    for t in report.tables:
        context.log.info(
            f"{t.table}: versions {t.versions_before} -> {t.versions_after}, "
            f"{t.bytes_before / 1e6:.1f} MB -> {t.bytes_after / 1e6:.1f} MB in {t.seconds:.1f}s"
        )
    context.add_output_metadata({
        "bytes_freed": report.bytes_freed,
        "versions_after": {t.table: t.versions_after for t in report.tables},
    })


@dg.job(executor_def=dg.in_process_executor, description="LanceDB compaction and cleanup of old versions.")
def housekeeping_job():
    optimize_tables()


weekly_housekeeping = dg.ScheduleDefinition(
    name="weekly_housekeeping",
    job=housekeeping_job,
    cron_schedule=HOUSEKEEPING_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Compact tables and clean up old versions (weekly by default; CODE_INDEX_HOUSEKEEPING_CRON).",
)
