"""The code location: every definition assembled here and nowhere else."""

import dagster as dg

from orchestration.assets.index import code_index_assets
from orchestration.assets.search_indexes import search_index_assets
from orchestration.jobs import index_job
from orchestration.resources import CodeIndexResource

defs = dg.Definitions(
    assets=[code_index_assets, *search_index_assets],
    jobs=[index_job],
    resources={"code_index": CodeIndexResource()},
)
