"""The consumer follows a run's events on Postgres, where concurrent writers commit out of
storage-id order: an event may become visible below one already read."""

from __future__ import annotations

import dagster as dg
import psycopg2
import pytest

from orchestration.embedding_consumer import SETTLE_SECONDS, ChunkLandings

pytestmark = pytest.mark.cluster
COLUMNS = "event, dagster_event_type, timestamp, step_key, asset_key, partition"
PARTITIONS = ["demo|s00", "demo|s01"]


@dg.op
def nothing() -> None:
    return None


@dg.job
def probe_job() -> None:
    nothing()


def test_a_landing_committed_below_one_already_read_is_still_taken(cluster) -> None:
    instance = dg.DagsterInstance.from_config(str(cluster.reader_home()))
    run = instance.create_run_for_job(probe_job)
    for key in PARTITIONS:  # the rows to copy into the run, as a chunk step writes them
        instance.report_runless_asset_event(dg.AssetMaterialization("chunks", partition=key))
    late, early = psycopg2.connect(cluster.pg_url), psycopg2.connect(cluster.pg_url)
    early.autocommit = True
    try:
        with early.cursor() as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM event_logs WHERE partition IN %s ORDER BY partition",
                (tuple(PARTITIONS),),
            )
            rows = cur.fetchall()
        insert = (
            f"INSERT INTO event_logs (id, run_id, {COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        )
        with late.cursor() as held:
            held.execute("SELECT nextval('event_logs_id_seq')")  # s00's writer takes its id
            (late_id,) = held.fetchone()
            with early.cursor() as cur:  # s01's writer takes the next id and commits first
                cur.execute("SELECT nextval('event_logs_id_seq')")
                (early_id,) = cur.fetchone()
                cur.execute(insert, (early_id, run.run_id, *rows[1]))
            clock = [100.0]
            landings = ChunkLandings(instance, run.run_id, PARTITIONS, "chunk", "plan")
            assert landings.poll(now=lambda: clock[0]).landed == ["demo|s01"]
            clock[0] += 0.25
            assert landings.poll(now=lambda: clock[0]).landed == []
            held.execute(insert, (late_id, run.run_id, *rows[0]))
            late.commit()  # s00 is now visible, below the id already read
        clock[0] += 0.25
        assert landings.poll(now=lambda: clock[0]).landed == ["demo|s00"]
        assert not landings.pending
        clock[0] += SETTLE_SECONDS + 1  # past the window: the cursor moves, nothing repeats
        assert landings.poll(now=lambda: clock[0]).landed == []
        assert landings.poll(now=lambda: clock[0]).landed == []
    finally:
        late.close()
        early.close()
        instance.dispose()
