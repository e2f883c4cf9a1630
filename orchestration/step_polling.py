"""How often a run's process wakes to look at a step that has nothing to say.

Dagster's multiprocess executor waits on each running step's event queue for at most `TICK`
(20 ms), checks that the step's process is alive, then goes round its whole loop (interrupts,
steps to launch, the plan's events) before it waits on the next step's queue. An index run is
mostly one step, the embedding consumer, embedding without an event for seconds at a time:
fifty rounds a second cost the run's process 1.3 s of CPU in a 44 s run on two cores (the
CPython tree, seventeenth session, `bench/reports/pipeline_cost_ab_runs.md`), CPU that the
encoder beside it needs.

A step's event ends the wait at once whatever its timeout, so a longer one delays nothing while
one step runs. With several running, an event waits at most one timeout for each other
running step's quiet queue, and a step whose process died unannounced is noticed one timeout
later.
"""

from __future__ import annotations

POLL_SECONDS = 0.1


def install(seconds: float = POLL_SECONDS) -> bool:
    """Wait up to `seconds` on a quiet step's queue (never less than Dagster's own). False,
    changing nothing, where Dagster no longer has this setting."""
    from dagster._core.executor import child_process_executor

    tick = getattr(child_process_executor, "TICK", None)
    if not isinstance(tick, float):
        return False
    child_process_executor.TICK = max(tick, seconds)
    return True
