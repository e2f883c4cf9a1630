"""Helpers for driving real Dagster instances in tests."""

from __future__ import annotations

import os
import sys

import dagster as dg

from indexer_core.storage import registry
from orchestration.runner import add_repository_partition
from tests.fresh_interpreter import python_output  # noqa: F401 - these tests' import of it


def materializations(
    instance: dg.DagsterInstance, run_id: str, asset: str
) -> list[dg.EventLogEntry]:
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return [
        e
        for e in entries
        if e.dagster_event.event_specific_data.materialization.asset_key.to_user_string() == asset
    ]


def partition_of(entry: dg.EventLogEntry) -> str:
    return entry.dagster_event.event_specific_data.materialization.partition


def metadata_of(entry: dg.EventLogEntry) -> dict:
    mat = entry.dagster_event.event_specific_data.materialization
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def setup_repo(instance: dg.DagsterInstance, db_uri: str, root, name: str = "demo") -> str:
    """Register a repository and add its partition, as a run for it would before planning."""
    registry.register(db_uri, name, root)
    add_repository_partition(instance, name)
    return name


def pid_unless_in_a_worker() -> int:
    """This process's pid; a process-pool worker (a child of another Python process) ends
    abruptly instead, as one whose server was killed would (tests `launch.call_warm`)."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        os._exit(1)
    return os.getpid()


def lancedb_loaded() -> bool:
    """Whether this process has imported LanceDB."""
    return "lancedb" in sys.modules


def module_mark() -> str:
    """`MARK` of this module as this process sees it: set at run time in a parent, it is
    seen in a child only if the child was forked from that parent's memory."""
    return globals().get("MARK", "")


def forkserver_lock_free() -> bool:
    """Whether this process could start a forkserver of its own: its copy of the forkserver's
    lock is not held (a fork copies a held lock held, with no thread left to release it)."""
    from multiprocessing import forkserver

    lock = forkserver._forkserver._lock
    if not lock.acquire(blocking=False):
        return False
    lock.release()
    return True


def collector_state() -> str:
    """Whether this process's cyclic collector runs, and whether what it was forked with is
    out of the collector's reach (`collector.freeze_heap`): 'on, 123456 frozen'."""
    import gc

    return f"{'on' if gc.isenabled() else 'off'}, {gc.get_freeze_count()} frozen"
