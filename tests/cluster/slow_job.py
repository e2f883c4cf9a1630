"""A job whose second step waits on a busy worker behind a long one: what a broker with a
short visibility timeout delivers twice (`test_visibility.py`)."""

from __future__ import annotations

import os
import time

import dagster as dg
from dagster_celery import celery_executor

LONG_SECONDS = 8


def _ops(queue: str):
    @dg.op(name=f"long_step_{queue.replace('-', '_')}", tags={"dagster-celery/queue": queue})
    def long_step() -> None:
        time.sleep(LONG_SECONDS)

    @dg.op(
        name=f"waiting_step_{queue.replace('-', '_')}",
        tags={"dagster-celery/queue": queue, "dagster-celery/priority": "1"},
        config_schema={"marker": str},
    )
    def waiting_step(context) -> None:
        with open(context.op_config["marker"], "a") as out:  # one line per execution
            out.write(f"{os.getpid()}\n")

    return long_step, waiting_step


_long, _waiting = _ops("slow")
_long_short, _waiting_short = _ops("slow-short")


@dg.job(executor_def=celery_executor)
def configured_job():
    _long()
    _waiting()


@dg.job(executor_def=celery_executor)
def short_timeout_job():
    _long_short()
    _waiting_short()
