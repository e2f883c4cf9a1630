"""bench.memory.ReapedCPU: the CPU of a whole process tree, orphans included, without sampling."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from bench.memory import ReapedCPU

# The child starts a grandchild that burns CPU after the child has already exited: only a
# subreaper gets that orphan back and so counts its CPU.
ORPHAN_BURNS = textwrap.dedent(
    """
    import os, time
    if os.fork() == 0:
        time.sleep(0.2)  # the parent has exited by now: this process is an orphan
        end = time.process_time() + 0.4
        while time.process_time() < end:
            pass
        os._exit(0)
    os._exit(0)
    """
)


def test_the_cpu_of_an_orphaned_grandchild_is_counted() -> None:
    with ReapedCPU() as reaped:
        subprocess.run([sys.executable, "-c", ORPHAN_BURNS], check=True)
    assert reaped.seconds is not None
    assert reaped.seconds >= 0.4


def test_nothing_started_inside_costs_nothing() -> None:
    with ReapedCPU() as reaped:
        pass
    assert reaped.seconds is not None
    assert reaped.seconds < 0.05
