"""The code location: every definition assembled here and nowhere else."""

import warnings

import dagster as dg

from orchestration import (
    config,
    instance_connections,
    instance_sync,
    migration_scripts,
    scale_out,
    step_polling,
)
from orchestration.assets.index import code_index_assets
from orchestration.assets.search_indexes import search_index_assets
from orchestration.housekeeping import (
    housekeeping_job,
    housekeeping_when_crowded,
    weekly_housekeeping,
)
from orchestration.jobs import index_executor, index_job, step_output_resources
from orchestration.resources import CodeIndexResource
from orchestration.schedules import daily_reconcile
from orchestration.sensors import repository_changes

# Dagster copies every sensor with `owners=[]` when it binds the sensor to its job, and warns
# that the parameter is in beta, once in every process that loads this code location (each
# step process of a run). Our sensors set no owners; the warning is Dagster's own, not ours.
warnings.filterwarnings(
    "ignore",
    message=r"Parameter `owners` of initializer `SensorDefinition.__init__`",
    category=dg.BetaWarning,
)

# Storage options and locks for whatever this process opens outside a step (sensors,
# schedules); steps install them again with the instance's Postgres (`CodeIndexResource`).
scale_out.install(config.load())
# Every process that loads the code location (step processes, the code server, the CLI's
# runs) writes its SQLite instance events without waiting for an fsync each, on connections
# it keeps instead of a new engine per event; and reads Dagster's migration scripts once, not
# once per storage it opens.
instance_sync.install(config.load().dagster_sync)
instance_connections.install()
migration_scripts.install()
# A run's process (the CLI's, or a run worker's) wakes ten times a second, not fifty, to look
# at a step that has sent no event.
step_polling.install()

defs = dg.Definitions(
    assets=[code_index_assets, *search_index_assets],
    jobs=[index_job, housekeeping_job],
    sensors=[repository_changes, housekeeping_when_crowded],
    schedules=[daily_reconcile, weekly_housekeeping],
    resources={"code_index": CodeIndexResource(), **step_output_resources(config.load())},
    # Materializations outside index_job (`dagster asset materialize`, the UI's Materialize)
    # run on the same executor: forked steps, the same concurrency, one embedding consumer.
    executor=index_executor,
)
