"""Jobs whose last step waits on a busy worker behind long ones: what a broker with a short
visibility timeout delivers twice (`test_visibility.py`)."""

from __future__ import annotations

import os
import time

import dagster as dg
from dagster_celery import celery_executor

LONG_SECONDS = 6  # well above the control's 2 s timeout and 1 s restore interval


def _ops(queue: str, long_steps: int) -> list[dg.OpDefinition]:
    """`long_steps` steps that keep every process of the queue's worker busy, and the
    waiting step, queued behind them (a lower priority): the worker reserves it meanwhile."""
    name = queue.replace("-", "_")

    def long_step(i: int) -> dg.OpDefinition:
        @dg.op(name=f"long_step_{name}_{i}", tags={"dagster-celery/queue": queue})
        def step() -> None:
            time.sleep(LONG_SECONDS)

        return step

    @dg.op(
        name=f"waiting_step_{name}",
        tags={"dagster-celery/queue": queue, "dagster-celery/priority": "1"},
        config_schema={"marker": str},
    )
    def waiting_step(context) -> None:
        with open(context.op_config["marker"], "a") as out:  # one line per execution
            out.write(f"{os.getpid()}\n")

    return [*(long_step(i) for i in range(long_steps)), waiting_step]


_profile_ops = _ops("dagster", 2)  # the profile's CPU worker: 2 processes
_short_ops = _ops("slow-short", 1)


@dg.job(executor_def=celery_executor)
def configured_job():
    for op in _profile_ops:
        op()


@dg.job(executor_def=celery_executor)
def short_timeout_job():
    for op in _short_ops:
        op()
