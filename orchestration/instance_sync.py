"""How long the local Dagster instance's SQLite databases wait for the disk on each write.

Dagster's SQLite storages open a connection per operation and commit every event on its
own. At SQLite's default (`synchronous=FULL`) each commit waits for an fsync: 2-15 ms on the
virtual disks measured here, and a run of the index job records ~350 events. 96 of them
(one "materialization planned" per asset and partition) are written before the run starts,
and every step writes its own before and after its work, so those waits sit on the critical
path of every run.

`off` (the default here) hands each write to the operating system and goes on. A process
killed in the middle of a write loses nothing (the operating system still holds it; the
crash tests kill steps with SIGKILL), and the index itself lives in LanceDB, not here; an
operating-system crash or power loss may lose the last events of the run history or damage
it. `normal` and `full` are SQLite's own levels (`CODE_INDEX_DAGSTER_SYNC`). Only SQLite
databases under `$DAGSTER_HOME` are touched: a Postgres instance, or any other SQLite file
this process opens, keeps its own settings.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path

LEVELS = ("off", "normal", "full")

_level: str | None = None  # None until `install`: connections are left as SQLite made them


def install(level: str) -> None:
    """Apply `level` to every later connection to a SQLite database under `$DAGSTER_HOME`
    in this process (and in processes forked from it). Idempotent; the latest level wins."""
    global _level
    level = level.strip().lower()
    if level not in LEVELS:
        raise ValueError(f"CODE_INDEX_DAGSTER_SYNC={level!r}: expected one of {', '.join(LEVELS)}")
    if _level is None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "connect", _on_connect)
    _level = level


def _on_connect(connection, _record) -> None:
    if _level is None or not isinstance(connection, sqlite3.Connection):
        return
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return
    cursor = connection.cursor()
    try:
        files = [row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"]
        if files and _under(files[0], home):
            cursor.execute(f"PRAGMA synchronous={_level}")
    finally:
        cursor.close()


@functools.lru_cache(maxsize=64)
def _under(path: str, home: str) -> bool:
    """Cached: Dagster opens a connection for every event, to the same few files."""
    if not path:  # an in-memory database
        return False
    return Path(path).resolve().is_relative_to(Path(home).resolve())
