"""The local instance's event log keeps one engine per database and process, and a kept
connection never outlives what it points at: a wiped database, a fork, a full cache."""

from __future__ import annotations

from tests.orchestration.helpers import python_output

SCRIPT = """
import os, sys
import dagster as dg
import orchestration.definitions  # installs kept connections, as every step process does
from dagster._core.storage.dagster_run import DagsterRun
from orchestration import instance_connections as kept

def messages(instance, run_id):
    return [e.message for e in instance.all_logs(run_id)]

with dg.DagsterInstance.get() as instance:
    first = instance.add_run(DagsterRun(job_name="j", run_id="a" * 36))
    instance.report_engine_event("one", first)
    engine = kept._engines._kept[instance.event_log_storage.path_for_shard(first.run_id)].engine
    instance.report_engine_event("two", first)
    # one engine serves every operation on a database
    assert kept._engines._kept[
        instance.event_log_storage.path_for_shard(first.run_id)
    ].engine is engine
    assert messages(instance, first.run_id) == ["one", "two"]

    # another process writes to the same run: visible on the kept connection at once
    pid = os.fork()
    if pid == 0:
        try:
            assert not kept._engines._kept  # a forked child starts without its parent's
            with dg.DagsterInstance.get() as child:
                child.report_engine_event("from the child", first)
            os._exit(0)
        except BaseException:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
    assert messages(instance, first.run_id) == ["one", "two", "from the child"]
    instance.report_engine_event("three", first)  # the parent's connection still works

    # a wiped instance removes the run's database file: a new file, a new engine
    instance.event_log_storage.wipe()
    instance.report_engine_event("after the wipe", first)
    assert messages(instance, first.run_id) == ["after the wipe"]

    # an asset event with tags asks whether the tags table exists: on the kept index engine
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    import sqlalchemy

    made = []
    real_create_engine = sqlalchemy.create_engine
    sqlalchemy.create_engine = lambda *a, **k: made.append(a) or real_create_engine(*a, **k)
    import dagster._core.storage.event_log.sqlite.sqlite_event_log as sqlite_log
    sqlite_log.create_engine = sqlalchemy.create_engine
    mat = dg.AssetMaterialization("chunks", partition="p", tags={"dagster/data_version": "v1"})
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="j",
        event_specific_data=StepMaterializationData(mat),
    )
    for _ in range(3):
        instance.report_dagster_event(event, run_id=first.run_id)
    assert instance.event_log_storage.has_table("asset_event_tags")
    assert not instance.event_log_storage.has_table("no_such_table")
    assert made == [], made  # neither has_table nor a store built an engine of its own
    record = instance.get_latest_data_version_record(dg.AssetKey("chunks"))
    assert record.asset_event.tags["dagster/data_version"] == "v1"

    # more databases than the cache holds: the oldest engines close, every write lands
    runs = [instance.add_run(DagsterRun(job_name="j", run_id=f"{i:036d}")) for i in range(12)]
    for run in runs:
        instance.report_engine_event(f"run {run.run_id[-2:]}", run)
    assert len(kept._engines._kept) <= kept.MAX_ENGINES
    assert [messages(instance, run.run_id) for run in runs] == [
        [f"run {run.run_id[-2:]}"] for run in runs
    ]
print("ok")
"""


def test_kept_connections_follow_the_files_forks_and_cache_bound(tmp_path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    output = python_output(SCRIPT, env={"DAGSTER_HOME": str(home)})
    assert output.strip().splitlines()[-1] == "ok"
