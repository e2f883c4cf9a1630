"""Loading the code location prints no warning of Dagster's own making.

Every step process of a run loads the code location; a warning there is repeated once per
step in the run's output (64 times for 64 partitions), burying the lines a person reads.
"""

from __future__ import annotations

from tests.orchestration.helpers import python_output

SCRIPT = """
import warnings, dagster
warnings.simplefilter("error", dagster.BetaWarning)
import orchestration.definitions as d
d.defs.get_repository_def()
print("loaded")
"""


def test_loading_the_definitions_raises_no_beta_warning() -> None:
    assert python_output(SCRIPT).strip().endswith("loaded")


PRELOAD = """
import os, sys
import orchestration.step_preload
loaded = [m for m in ("dagster._core.storage.runs.sqlite.sqlite_run_storage",
                      "dagster._core.storage.event_log.sqlite.sqlite_event_log",
                      "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage")
          if m in sys.modules]
print(len(loaded), sorted(os.listdir(os.environ["DAGSTER_HOME"])))
"""


def test_the_step_server_loads_instance_storage_code_and_creates_nothing(tmp_path) -> None:
    """The server that steps fork from loads what opening an instance loads, so a step does
    not pay for it; it must not create the Dagster home's databases itself (the run's own
    process does, and two processes creating them at once could race)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    output = python_output(PRELOAD, env={"DAGSTER_HOME": str(home)})
    assert output.strip().splitlines()[-1] == "3 []"


OPEN_AFTER_PRELOAD = """
import os, sys
import orchestration.step_preload
import dagster as dg
from dagster._core.instance.ref import InstanceRef
from indexer_core.chunking.tokens import load_token_counter
from indexer_core.indexing.settings import chunker_fingerprint
from orchestration import config
model = config.load().model
print("warm", load_token_counter.cache_info().currsize, chunker_fingerprint.cache_info().currsize)
load_token_counter(model), chunker_fingerprint(model)
print("hits", load_token_counter.cache_info().hits >= 1, chunker_fingerprint.cache_info().hits)
ref = InstanceRef.from_dir(os.environ["DAGSTER_HOME"])
before = set(sys.modules)
with dg.DagsterInstance.from_ref(ref):
    pass
print("imported", sorted(set(sys.modules) - before))
"""


def test_a_step_starts_with_its_instance_code_and_token_counter_loaded(tmp_path) -> None:
    """What a step does before its work is already done in the server it forks from:
    - opening the run's instance from its reference imports nothing (`SHARED_WITH_STEPS`,
      `step_preload`; its state storage's path library and fsspec cost each step 0.1-0.2 s of
      CPU before);
    - the configured model's token counter and chunker fingerprint are in their caches (a
      chunk step loaded them, ~0.1 s, before its first file)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    output = python_output(OPEN_AFTER_PRELOAD, env={"DAGSTER_HOME": str(home)})
    assert output.strip().splitlines()[-3:] == ["warm 1 1", "hits True 1", "imported []"], output
