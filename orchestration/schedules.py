"""The daily reconcile: every shard of every repository, hashing every file again.

It catches what a sensor cannot: edits made while no daemon ran, or changes that kept size
and mtime. Unchanged shards cost a scan and no parsing or embedding.
"""

import dagster as dg

from indexer_core.storage import registry
from orchestration import config
from orchestration.jobs import index_job, partition_tags
from orchestration.partitions import shard_count
from orchestration.resources import CodeIndexResource

RECONCILE_CRON = config.load().reconcile_cron


@dg.schedule(
    cron_schedule=RECONCILE_CRON,
    job=index_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-hash and reconcile every repository "
    "(daily by default; CODE_INDEX_RECONCILE_CRON).",
)
def daily_reconcile(context: dg.ScheduleEvaluationContext, code_index: CodeIndexResource):
    for repo in sorted(registry.repositories(code_index.db_uri)):
        yield dg.RunRequest(
            run_key=f"reconcile-{repo}-{context.scheduled_execution_time.isoformat()}",
            tags=partition_tags(repo, list(range(shard_count()))),
            run_config={"resources": {"code_index": {"config": {"rehash": True}}}},
        )
