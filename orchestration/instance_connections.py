"""One kept connection pool per SQLite event-log database and process, for the local
Dagster instance.

Dagster's SQLite event log storage builds a new SQLAlchemy engine, opens a connection (and
SQLite parses the database's schema again) for every operation, then throws it away; an
asset event with tags (all of the index job's carry a data version) builds one more to ask
whether the tags table exists. That costs ~5.2 ms per event stored, ~14 ms per asset event
and ~5.8 ms per read of a run's log on these machines, against ~1.2, ~5.9 and ~2.6 ms on
kept connections (`python -m bench.instance_sync --events-only`, 2026-11-29), for each of
the hundreds of events an index run stores and each poll of the run's log by the embedding
consumer and the CLI's progress bars.
Here each process keeps one engine per database file (a run's shard, the index shard).

Kept connections must never outlive what they point at:
- a database file that was removed or replaced (a wiped instance, a deleted run) is noticed
  by its inode on the next checkout, and its engine is rebuilt;
- a forked process starts with no engines and never closes or uses its parent's;
- at most `MAX_ENGINES` databases are kept; the least recently used one is closed.

Between operations a kept connection holds no lock: every operation runs in its own
transaction, committed (or rolled back) when it ends, as before. Only the SQLite storages
of a Dagster home are touched; Postgres storage keeps its own pool.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MAX_ENGINES = 8
BUSY_TIMEOUT_SECONDS = 120  # Dagster's own SQLITE_BUSY_TIMEOUT_SECONDS

_installed = False


@dataclass
class _Kept:
    engine: object
    file_id: tuple[int, int] | None  # (st_dev, st_ino) once the file exists


class _Engines:
    """The engines of this process, by database path, least recently used first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._inherited: list[_Kept] = []  # a parent's, kept from being closed here

    def engine_for(self, path: str, conn_string: str):
        """The kept engine for the database at `path`, built or rebuilt as needed."""
        with self._lock:
            kept = self._kept.get(path)
            if kept is not None and kept.file_id is not None and _file_id(path) != kept.file_id:
                self._kept.pop(path)
                kept.engine.dispose()
                kept = None
            if kept is None:
                kept = _Kept(_new_engine(conn_string), None)
                self._kept[path] = kept
                while len(self._kept) > MAX_ENGINES:
                    _, oldest = self._kept.popitem(last=False)
                    oldest.engine.dispose()
            self._kept.move_to_end(path)
            return kept

    def opened(self, kept: _Kept, path: str) -> None:
        """Note the file a new engine's first connection created or found."""
        if kept.file_id is None:
            kept.file_id = _file_id(path)

    def forget_after_fork(self) -> None:
        """In a forked child: start with no engines. The parent's stay referenced, never
        closed or used here, so the child cannot disturb the parent's connections."""
        self._lock = threading.Lock()
        self._inherited += self._kept.values()
        self._kept = OrderedDict()


_engines = _Engines()


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def _new_engine(conn_string: str):
    from sqlalchemy import create_engine

    return create_engine(conn_string, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})


def _kept_has_table(self, table_name: str) -> bool:
    """`SqliteEventLogStorage.has_table` on the index database's kept engine. Dagster asks
    it for every asset event with tags (a data version, as the index job's all have), from
    inside the event's own transaction, each time with a new engine and connection. Not
    under the storage's lock, which that transaction holds: a second pooled connection only
    reads the schema."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME

    path = self.path_for_shard(INDEX_SHARD_NAME)
    kept = _engines.engine_for(path, self.conn_string_for_shard(INDEX_SHARD_NAME))
    with kept.engine.connect() as conn:
        _engines.opened(kept, path)
        return bool(kept.engine.dialect.has_table(conn, table_name))


@contextmanager
def _kept_connect(self, shard: str) -> Iterator[object]:
    """`SqliteEventLogStorage._connect` on a kept engine: same lock, same one-transaction
    scope, same first-use schema set-up per storage and shard."""
    with self._db_lock:
        path = self.path_for_shard(shard)
        kept = _engines.engine_for(path, self.conn_string_for_shard(shard))
        if shard not in self._initialized_dbs:
            self._initdb(kept.engine)
            self._initialized_dbs.add(shard)
        with kept.engine.connect() as conn:
            _engines.opened(kept, path)
            with conn.begin():
                yield conn


def install() -> bool:
    """Keep engines for every SQLite event log storage in this process (and processes forked
    from it). Idempotent. False, changing nothing, where Dagster's storage no longer has the
    methods this relies on: it then runs as Dagster ships it."""
    global _installed
    if _installed:
        return True
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    needed = (
        "_connect",
        "_db_lock",
        "_initdb",
        "has_table",
        "path_for_shard",
        "conn_string_for_shard",
    )
    probe = SqliteEventLogStorage.__init__.__code__.co_names
    if not all(hasattr(SqliteEventLogStorage, name) or name in probe for name in needed):
        return False
    SqliteEventLogStorage._connect = _kept_connect
    SqliteEventLogStorage.has_table = _kept_has_table
    os.register_at_fork(after_in_child=_engines.forget_after_fork)
    _installed = True
    return True
