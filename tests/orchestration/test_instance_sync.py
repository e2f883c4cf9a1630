"""The local Dagster instance's SQLite databases write at the configured `synchronous` level,
and no other SQLite database a process opens is touched."""

from __future__ import annotations

import pytest

from tests.orchestration.helpers import python_output

SCRIPT = """
import sys
import dagster as dg
import sqlalchemy
import orchestration.definitions  # installs the level, as every step process does
from dagster._core.storage.dagster_run import DagsterRun

def level(connection):
    return connection.exec_driver_sql("PRAGMA synchronous").scalar()

with dg.DagsterInstance.get() as instance:
    run = instance.add_run(DagsterRun(job_name="j", run_id="a" * 36))
    instance.report_engine_event("hello", run)  # creates the run's own event database
    with instance.run_storage.connect() as conn:
        runs = level(conn)
    with instance.event_log_storage.run_connection(run.run_id) as conn:
        events = level(conn)
    assert [e.message for e in instance.all_logs(run.run_id)] == ["hello"]
with sqlalchemy.create_engine(f"sqlite:///{sys.argv[1]}").connect() as conn:
    other = level(conn)
print(runs, events, other)
"""


@pytest.mark.parametrize(("setting", "expected"), [("", "0 0 2"), ("full", "2 2 2")])
def test_instance_databases_take_the_configured_level(
    tmp_path, monkeypatch, setting, expected
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The default is what an unset variable gives, whatever this process's environment says.
    monkeypatch.delenv("CODE_INDEX_DAGSTER_SYNC", raising=False)
    env = {"DAGSTER_HOME": str(home), **({"CODE_INDEX_DAGSTER_SYNC": setting} if setting else {})}
    output = python_output(SCRIPT, str(tmp_path / "elsewhere.db"), env=env)
    assert output.strip().splitlines()[-1] == expected


def test_an_unknown_level_is_refused_naming_the_setting() -> None:
    from orchestration import instance_sync

    with pytest.raises(ValueError, match="CODE_INDEX_DAGSTER_SYNC"):
        instance_sync.install("sometimes")
