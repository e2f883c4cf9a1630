"""A run's process wakes ten times a second, not fifty, while a step runs without an event."""

from __future__ import annotations

from pathlib import Path

from tests.orchestration.helpers import python_output

JOB = """
import time
import dagster as dg

@dg.op
def quiet() -> int:
    time.sleep(2.0)
    return 1

@dg.op
def after(value: int) -> int:
    return value + 1

FORKED = {"start_method": {"forkserver": {"preload_modules": ["dagster", "quiet_job"]}}}


@dg.job(executor_def=dg.multiprocess_executor.configured(FORKED))
def two_steps():
    after(quiet())
"""

# The same job twice in one process: with Dagster's own wait, then with ours installed.
RUN = """
import os, tempfile, time
import dagster as dg
from dagster._core.executor import child_process_executor
import quiet_job
waits = []
original = child_process_executor._poll_for_event
def counted(process, queue):
    waits.append(time.monotonic())
    return original(process, queue)
child_process_executor._poll_for_event = counted
home = tempfile.mkdtemp()
open(os.path.join(home, 'dagster.yaml'), 'w').write('telemetry:\\n  enabled: false\\n')
for installed in (False, True):
    if installed:
        from orchestration import step_polling
        assert step_polling.install()
    waits.clear()
    with dg.DagsterInstance.from_config(home) as instance:
        job = dg.reconstructable(quiet_job.two_steps)
        with dg.execute_job(job, instance=instance) as result:
            assert result.success
            assert result.output_for_node('after') == 2
    print('waits', len(waits), 'tick', child_process_executor.TICK)
"""


def test_a_quiet_step_is_looked_at_ten_times_a_second(tmp_path: Path) -> None:
    (tmp_path / "quiet_job.py").write_text(JOB)
    env = {"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[2]}"}
    dagster_own, ours = python_output(RUN, env=env).splitlines()[-2:]
    dagster_waits, dagster_tick = int(dagster_own.split()[1]), float(dagster_own.split()[3])
    waits, tick = int(ours.split()[1]), float(ours.split()[3])
    assert (dagster_tick, tick) == (0.02, 0.1)
    # Two seconds of a quiet step, plus each step's start: Dagster's own wait wakes about 50
    # times a second, ours about 10; both runs succeed with the right output.
    assert dagster_waits >= 80, dagster_own
    assert waits <= dagster_waits / 3, ours
