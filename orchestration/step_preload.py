"""What the forkserver loads once, so each step process forked from it starts warm.

Step processes of the index job fork from a server that has imported the code location
(dagster, lancedb, tree-sitter, this package), instead of each spawning and importing it
all again. The server also loads what a process's first Dagster instance loads (the
storages and their schema migrations: alembic imports every revision script), about a
second of CPU that every step would otherwise pay again before it starts. Never import
torch or touch CUDA here: the embedding consumer loads the model in its own process.

lancedb warns on every fork that its async runtime was reset and that "a small chance of
deadlock remains if other state was mid-operation at fork time". The server forks only
while idle, never in the middle of a LanceDB call (it makes none), so that warning would
only repeat itself in every step's output; it is silenced for step processes alone.
"""

import warnings

import orchestration.definitions  # noqa: F401 - imported for its side effect: a warm server
from indexer_core.collector import freeze_heap
from indexer_core.storage.lancedb_import import import_lancedb
from orchestration.launch import SHARED_WITH_STEPS, import_present

import_lancedb()  # the code location imports it on first use; every step uses it

warnings.filterwarnings(
    "ignore", message="lancedb fork support is experimental", category=RuntimeWarning
)


def _load_instance_storage_code() -> None:
    """Import the SQLite instance storages and load their migration scripts, as opening an
    instance would, without opening one: the server may start before the run's Dagster home
    has its databases, and creating them belongs to the run's own process. The scripts'
    revision map is built here once (`migration_scripts`, installed by the code location)
    and every step inherits it. Only a warm-up: on a Dagster whose internals moved, steps
    simply start colder."""
    try:
        from alembic.script import ScriptDirectory
        from dagster._core.storage.event_log.sqlite import sqlite_event_log
        from dagster._core.storage.runs.sqlite import sqlite_run_storage
        from dagster._core.storage.schedules.sqlite import sqlite_schedule_storage
        from dagster._core.storage.sql import get_alembic_config

        for storage in (sqlite_run_storage, sqlite_event_log, sqlite_schedule_storage):
            ScriptDirectory.from_config(get_alembic_config(storage.__file__)).get_heads()
    except Exception:  # noqa: BLE001 - see above
        return


_load_instance_storage_code()


def _load_token_counter() -> None:
    """Load the configured model's token counter, its chunker fingerprint and its word costs, as
    a chunk step does before its first file (~0.1 s of CPU a step): the steps forked from here
    find them in their caches. Loading only: no batch is tokenized, so the tokenizer's thread
    pool does not start before a fork, and nothing is downloaded (a download's threads would
    be): with `HF_HUB_OFFLINE=0` the steps load the model themselves. A model that cannot be
    loaded here is simply loaded (and its error reported) by the step that needs it."""
    from indexer_core.embedding.model_location import models_offline

    if not models_offline():
        return
    try:
        from indexer_core.chunking.linecost import prefix_costs
        from indexer_core.chunking.tokens import load_token_counter
        from indexer_core.indexing.settings import chunker_fingerprint
        from orchestration import config

        model = config.load().model
        chunker_fingerprint(model)
        prefix_costs(["warm"], load_token_counter(model))
    except Exception:  # noqa: BLE001 - see above
        return


_load_token_counter()

# What every step process would otherwise import on first use, before or as its step starts:
# what opening its instance imports (`SHARED_WITH_STEPS`: a spawned server has not imported
# them), compute logs, env-file secrets and config defaults (~50 ms of CPU a step, at the
# run's start and at its end, the checks step), and for a chunk step the grammars and what
# `numpy.unique` loads. None of them starts a thread; onnxruntime does, so the embedding
# consumer imports it itself.
_STEP_IMPORTS = (
    *SHARED_WITH_STEPS,
    "dagster._core.secrets.env_file",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.system_config.composite_descent",
    "tree_sitter_languages",
    "numpy.ma",
)
import_present(_STEP_IMPORTS)

# Every step forks from here: a step's collector passes walk only what the step allocates,
# not the modules above (over 200k objects), whose pages then stay shared with the server.
freeze_heap()
