"""Loading the code location prints no warning of Dagster's own making.

Every step process of a run loads the code location; a warning there is repeated once per
step in the run's output (64 times for 64 partitions), burying the lines a person reads.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import warnings, dagster
warnings.simplefilter("error", dagster.BetaWarning)
import orchestration.definitions as d
d.defs.get_repository_def()
print("loaded")
"""


def test_loading_the_definitions_raises_no_beta_warning() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("loaded")
