"""Dagster's Postgres instance storage, with one kept connection per process instead of a new
connection for every query.

dagster-postgres builds its engines without a pool (`NullPool`) so that the many instances a
long-lived process may create hold no connections. Every event a step records then opens
several connections (the event row, the asset index, a table check), and every connection is
a TCP handshake, an authentication and a server process forked by Postgres: on the cluster
profile that was about a fifth of a chunk step's CPU and as much again on the database host.
Here every instance of a process shares one engine per database URL, holding a single
connection (more open only while several threads query at once, and close again), checked
with a ping before use so a restarted server costs one retry, never a failed step.

Configured in `deploy/cluster/dagster.yaml` as `storage: custom:` with this class and the
same config as Dagster's `storage: postgres:`.
"""

from __future__ import annotations

import os
import threading

import sqlalchemy
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

POOL_OVERFLOW = 8  # connections beyond the kept one, while threads query at once
POOL_RECYCLE_S = 3600

_engines: dict[tuple[int, str], sqlalchemy.engine.Engine] = {}
_engines_lock = threading.Lock()


def shared_engine(postgres_url: str, token_provider=None) -> sqlalchemy.engine.Engine:
    """This process's pooled engine for `postgres_url` (a forked child makes its own: a
    connection must never be shared across processes)."""
    key = (os.getpid(), postgres_url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_pg_engine(
                postgres_url,
                token_provider,
                isolation_level="AUTOCOMMIT",
                pool_size=1,
                max_overflow=POOL_OVERFLOW,
                pool_recycle=POOL_RECYCLE_S,
                pool_pre_ping=True,
            )
            _engines[key] = engine
        return engine


class PooledPostgresStorage(DagsterPostgresStorage):
    """`DagsterPostgresStorage` whose run, event log and schedule storages query through
    `shared_engine`."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider=None,
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        engine = shared_engine(postgres_url, token_provider)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine = engine

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
