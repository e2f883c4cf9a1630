"""The embedding consumer's interface on its own: what it reads from a real run's event log,
and that it embeds and records partitions as they land, in a real LanceDB directory."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest
from dagster._core.events import StepMaterializationData
from hypothesis import given
from hypothesis import strategies as st

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import EmbedReport
from indexer_core.indexing.partitioning import shard_of
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import tables as storage
from orchestration.embedding_consumer import (
    ChunkLandings,
    EmbeddingConsumer,
    rerun_chunked_elsewhere,
)
from orchestration.metadata import embed_metadata, slice_metadata
from orchestration.partitions import (
    NO_GROUP,
    chunk_groups,
    first_and_rest,
    group_mapping_key,
    group_of_mapping_key,
    keys_for_repo,
    mapping_key,
    partition_of_mapping_key,
)
from tests.conftest import write_tree
from tests.reliability.fakes import HashEmbedder

PARTITIONS = ["demo|s00", "demo|s01", "demo|s02"]


@dg.op(out=dg.DynamicOut(list))
def plan():
    for group in chunk_groups(PARTITIONS, 2):  # [s00, s01], [s02]
        yield dg.DynamicOutput(group, mapping_key=group_mapping_key(group))


@dg.op
def chunk(context, group: list) -> list:
    for key in group:
        if key == "demo|s01":
            raise RuntimeError("this shard cannot be chunked")
        context.log_event(dg.AssetMaterialization("chunks", partition=key))
        context.log_event(dg.AssetMaterialization("files", partition=key))
    return group


@dg.job
def landing_job():
    plan().map(chunk)


@dg.op
def consume_slices(context) -> None:
    """What consumers record: a sized landing, slices of one partition, another recorded."""
    context.log_event(
        dg.AssetMaterialization(
            "chunks", partition="demo|s00", metadata={"dagster/partition_row_count": 70}
        )
    )
    report = EmbedReport(repo="demo", shard=0, chunks=35, embedded=30, reused=5, model="m")
    for index in (0, 1):
        metadata = slice_metadata(report, "/db", index, 2)
        context.log_event(dg.AssetObservation("vectors", partition="demo|s00", metadata=metadata))
    context.log_event(
        dg.AssetMaterialization(
            "vectors", partition="demo|s02", metadata=embed_metadata(report, "/db")
        )
    )


@dg.job
def slices_job():
    consume_slices()


@dg.op
def failing_plan():
    raise RuntimeError("no plan")


@dg.job
def failed_plan_job():
    failing_plan()


@dg.op(config_schema={"fail": bool})
def chunk_first(context) -> list:
    """The chunk step that starts with the run: lands s00, then fails before s01 when told."""
    context.log_event(dg.AssetMaterialization("chunks", partition="demo|s00"))
    if context.op_config["fail"]:
        raise RuntimeError("this shard cannot be chunked")
    context.log_event(dg.AssetMaterialization("chunks", partition="demo|s01"))
    return ["demo|s00", "demo|s01"]


@dg.job
def first_and_failed_plan_job():
    chunk_first()
    failing_plan()


FIRST = ("chunk_first", ["demo|s00", "demo|s01"])


@given(st.text(min_size=1, max_size=40))
def test_mapping_keys_are_valid_and_decode_to_their_partition(text: str) -> None:
    key = f"{text}|s03"
    encoded = mapping_key(key)
    assert encoded and all(c.isascii() and (c.isalnum() or c == "_") for c in encoded)
    assert partition_of_mapping_key(encoded) == key


@given(st.lists(st.sampled_from("ab_|é-.s0"), min_size=1, max_size=6), st.integers(1, 5))
def test_chunk_groups_cover_the_run_and_their_keys_decode(names, steps: int) -> None:
    planned = sorted({f"{''.join(names)}{i}|s{i:02d}" for i in range(7)})
    groups = chunk_groups(planned, steps)
    assert [k for g in groups for k in g] == planned and len(groups) == min(steps, 7)
    assert max(map(len, groups)) - min(map(len, groups)) <= 1
    for group in groups:
        assert group_of_mapping_key(group_mapping_key(group), planned) == group
    first, rest = first_and_rest(planned, steps)
    assert [first, *rest] == groups
    assert group_of_mapping_key(NO_GROUP, planned) == []


def test_landings_come_from_materializations_and_step_failures() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = landing_job.execute_in_process(instance=instance, raise_on_error=False)
        landings = ChunkLandings(instance, result.run_id, PARTITIONS, "chunk", "plan")
        found = landings.poll()
        assert sorted(found.landed) == ["demo|s00", "demo|s02"]
        assert found.failed == ["demo|s01"] and not found.aborted
        assert not landings.pending
        again = landings.poll()  # each partition is reported once
        assert not again.landed and not again.failed


def test_on_sqlite_each_event_is_read_once_and_a_later_landing_is_still_taken() -> None:
    """SQLite's writers take turns, so ids become visible in order: the cursor passes each
    event as it is read (on Postgres it waits SETTLE_SECONDS; tests/cluster covers that)."""
    with dg.DagsterInstance.local_temp() as instance:
        run_id = landing_job.execute_in_process(instance=instance, raise_on_error=False).run_id
        landings = ChunkLandings(instance, run_id, [*PARTITIONS, "demo|s03"], "chunk", "plan")
        read: list[int] = []
        fetch = instance.get_records_for_run

        def counted(**kwargs):
            page = fetch(**kwargs)
            read.extend(record.storage_id for record in page.records)
            return page

        instance.get_records_for_run = counted
        assert sorted(landings.poll().landed) == ["demo|s00", "demo|s02"]
        assert len(read) == len(set(read)) > 0
        for _ in range(3):
            seen = len(read)
            assert landings.poll(now=lambda: 0.0).landed == [] and len(read) == seen
        _land_in_run(instance, run_id, "demo|s03")
        assert landings.poll(now=lambda: 0.0).landed == ["demo|s03"]


def _land_in_run(instance: dg.DagsterInstance, run_id: str, key: str) -> None:
    """A `chunks` materialization of `key` recorded in the run's own log, as a step would."""
    event = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="landing_job",
        step_key="chunk[late]",
        event_specific_data=StepMaterializationData(
            dg.AssetMaterialization("chunks", partition=key)
        ),
    )
    instance.report_dagster_event(event, run_id=run_id)


def test_sizes_slices_and_records_are_read_from_this_runs_events_only() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        earlier = slices_job.execute_in_process(instance=instance).run_id
        run_id = slices_job.execute_in_process(instance=instance).run_id
        landings = ChunkLandings(instance, run_id, PARTITIONS, "chunk", "plan")
        found = landings.poll()
        assert found.landed == ["demo|s00"] and found.sizes == {"demo|s00": 70}
        assert sorted(done.index for done in found.slices) == [0, 1]
        assert found.slices[0].count == 2 and found.slices[0].report.embedded == 30
        assert found.embedded == ["demo|s02"]
        assert landings.recorded("demo|s02") and not landings.recorded("demo|s00")
        assert sorted(d.index for d in landings.slices_written("demo|s00")) == [0, 1]
        assert not landings.slices_written("demo|s02")
        # Another run's events of the same partitions count for nothing here.
        fresh = ChunkLandings(instance, "no-such-run", PARTITIONS, "chunk", "plan")
        assert not fresh.recorded("demo|s02") and not fresh.slices_written("demo|s00")
        assert ChunkLandings(instance, earlier, PARTITIONS, "chunk", "plan").recorded("demo|s02")


def test_a_failed_planning_step_aborts_the_wait() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = failed_plan_job.execute_in_process(instance=instance, raise_on_error=False)
        landings = ChunkLandings(instance, result.run_id, PARTITIONS, "chunk", "failing_plan")
        found = landings.poll()
        assert found.aborted and sorted(found.failed) == PARTITIONS and not landings.pending


@pytest.mark.parametrize("first_fails", [False, True])
def test_a_failed_plan_leaves_the_first_chunk_step_going(first_fails: bool) -> None:
    """The planning step's failure fails the groups it would have fanned out; the chunk step
    that started with the run still lands its partitions, or fails them by its own failure
    (those that landed before it failed stay landed)."""
    with dg.DagsterInstance.ephemeral() as instance:
        result = first_and_failed_plan_job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"chunk_first": {"config": {"fail": first_fails}}}},
        )
        landings = ChunkLandings(
            instance, result.run_id, PARTITIONS, "chunk", "failing_plan", first=FIRST
        )
        found = landings.poll()
        assert found.aborted and not landings.pending
        assert sorted(found.landed) == (["demo|s00"] if first_fails else FIRST[1])
        assert sorted(found.failed) == (["demo|s01", "demo|s02"] if first_fails else ["demo|s02"])


def test_a_reexecution_counts_partitions_chunked_by_its_parent_as_landed() -> None:
    rerun = dg.DagsterRun(
        job_name="index_job",
        run_id="child",
        parent_run_id="parent",
        root_run_id="parent",
        step_keys_to_execute=[f"graph.chunk[{mapping_key('demo|s01')}]", "graph.embed"],
    )
    assert rerun_chunked_elsewhere(rerun, PARTITIONS, "chunk") == ["demo|s00", "demo|s02"]
    # The chunk step that starts with the run, re-executed: its partitions are chunked again.
    first_again = dg.DagsterRun(
        job_name="index_job",
        run_id="child",
        parent_run_id="parent",
        root_run_id="parent",
        step_keys_to_execute=["graph.chunk_first", "graph.embed"],
    )
    assert rerun_chunked_elsewhere(first_again, PARTITIONS, "chunk", FIRST) == ["demo|s02"]
    assert rerun_chunked_elsewhere(first_again, PARTITIONS, "chunk") == PARTITIONS
    first = dg.DagsterRun(job_name="index_job", run_id="first")
    assert rerun_chunked_elsewhere(first, PARTITIONS, "chunk") == []
    with dg.DagsterInstance.ephemeral() as instance:
        landings = ChunkLandings(
            instance, "no-such-run", PARTITIONS, "chunk", "plan", already_chunked=["demo|s02"]
        )
        assert landings.poll().landed == ["demo|s02"]
        assert landings.pending == {"demo|s00", "demo|s01"}


class _ScriptedLandings:
    """Partitions landing one by one, on a schedule, as a run's chunk steps would."""

    def __init__(self, keys: list[str], every: float, sizes: dict[str, int] | None = None) -> None:
        self.pending = set(keys)
        self._order = list(keys)
        self._every = every
        self._start = time.monotonic()
        self._sizes = sizes or {}

    def poll(self):
        from orchestration.embedding_consumer import Landed

        due = int((time.monotonic() - self._start) / self._every) + 1
        landed = [k for k in self._order[:due] if k in self.pending]
        self.pending -= set(landed)
        return Landed(landed=landed, sizes={k: self._sizes[k] for k in landed if k in self._sizes})


def test_the_consumer_embeds_each_partition_as_it_lands(tmp_path, db_uri) -> None:
    files = {f"pkg/m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(24)}
    root = write_tree(tmp_path / "repo", files)
    settings = IndexSettings(shards=4)
    keys = keys_for_repo("demo", list(range(4)))
    for shard in range(4):
        chunk_partition(db_uri, "demo", str(root), shard, settings)
    recorded: list[tuple[str, float, int]] = []
    consumer = EmbeddingConsumer(
        db_uri,
        HashEmbedder(),
        lambda key, report: recorded.append((key, time.monotonic(), report.embedded)),
        poll_seconds=0.01,
    )
    thread_ids = set()
    consumer.record = lambda key, report, inner=consumer.record: (
        thread_ids.add(threading.get_ident()),
        inner(key, report),
    )
    started = time.monotonic()
    outcome = consumer.run(_ScriptedLandings(keys, every=0.3))
    consumer.close()
    assert outcome.embedded == keys and [r[0] for r in recorded] == keys
    assert thread_ids == {threading.get_ident()}  # recorded from the calling thread
    # The first partition was recorded before the last one had landed.
    assert recorded[0][1] - started < 0.9
    vectors = storage.connect(db_uri).open_table(storage.VECTORS)
    chunks = storage.connect(db_uri).open_table(storage.CHUNKS)
    assert vectors.count_rows() == chunks.count_rows() == sum(r[2] for r in recorded)


def test_an_idle_consumer_polls_sooner_than_a_busy_one(tmp_path, db_uri, monkeypatch) -> None:
    """Waiting with nothing queued (the first partition not landed yet), the consumer polls
    every IDLE_POLL_SECONDS, so the encoder starts soon after a landing; it never sleeps
    longer than that while idle."""
    from orchestration import embedding_consumer
    from orchestration.embedding_consumer import IDLE_POLL_SECONDS, POLL_SECONDS

    root = write_tree(tmp_path / "repo", {"a.py": "def a():\n    return 1\n"})
    chunk_partition(db_uri, "demo", str(root), 0, IndexSettings(shards=1))
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(embedding_consumer.time, "sleep", sleep)
    consumer = EmbeddingConsumer(db_uri, HashEmbedder(), lambda key, report: None)
    landings = _ScriptedLandings(["demo|s00"], every=0.3)
    landings._start += 0.6  # the first partition lands about 0.3 s from now, not at once
    outcome = consumer.run(landings)
    consumer.close()
    assert outcome.embedded == ["demo|s00"]
    assert IDLE_POLL_SECONDS < POLL_SECONDS
    assert len(slept) >= 3 and set(slept) == {IDLE_POLL_SECONDS}


def test_a_failed_write_raises_and_keeps_what_was_recorded(tmp_path, db_uri) -> None:
    root = write_tree(tmp_path / "repo", {"a.py": "def a():\n    return 1\n"})
    chunk_partition(db_uri, "demo", str(root), 0, IndexSettings(shards=1))

    class Broken(HashEmbedder):
        def encode(self, texts):
            raise RuntimeError("device lost")

    recorded: list[str] = []
    consumer = EmbeddingConsumer(db_uri, Broken(), lambda key, report: recorded.append(key))
    with pytest.raises(RuntimeError, match="device lost"):
        consumer.run(_ScriptedLandings(["demo|s00"], every=0.01))
    assert recorded == []


def test_empty_partitions_are_settled_in_one_read_unless_they_hold_vectors(
    tmp_path, db_uri
) -> None:
    """A partition its chunk step left without chunks (its recorded row count is 0) and that
    holds no vectors is recorded without a read of its own; one that still holds vectors (its
    files were deleted) goes through the worker, which removes them."""
    files = {f"m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(3)}
    root = write_tree(tmp_path / "repo", files)
    settings = IndexSettings(shards=16)
    keys = keys_for_repo("demo", list(range(16)))

    def chunk_and_embed() -> tuple[dict[str, EmbedReport], list[str]]:
        sizes = {
            key: chunk_partition(db_uri, "demo", str(root), shard, settings).chunks_total
            for shard, key in enumerate(keys)
        }
        reports: dict[str, EmbedReport] = {}
        consumer = EmbeddingConsumer(db_uri, HashEmbedder(), reports.__setitem__, poll_seconds=0.01)
        submitted: list[str] = []
        submit = consumer._worker.submit
        consumer._worker.submit = lambda repo, shard, **kw: (
            submitted.append(f"{repo}|s{shard:02d}"),
            submit(repo, shard, **kw),
        )[1]
        outcome = consumer.run(_ScriptedLandings(keys, every=0.0001, sizes=sizes))
        consumer.close()
        assert sorted(outcome.embedded) == keys and sorted(reports) == keys
        return reports, submitted

    reports, submitted = chunk_and_embed()
    holding = sorted(key for key, report in reports.items() if report.chunks)
    assert 1 <= len(holding) <= 3 and submitted == holding  # the other shards took no read
    db = storage.connect(db_uri)
    assert db.open_table(storage.VECTORS).count_rows() == sum(r.chunks for r in reports.values())

    gone = holding[0]
    for path in list(files):
        if shard_of(path, settings.shards) == int(gone[-2:]):
            (root / path).unlink()
    reports, submitted = chunk_and_embed()
    assert gone in submitted and reports[gone].chunks == 0 and reports[gone].removed > 0
    vectors = storage.connect(db_uri).open_table(storage.VECTORS)
    chunks = storage.connect(db_uri).open_table(storage.CHUNKS)
    assert vectors.count_rows() == chunks.count_rows()
    assert vectors.count_rows(storage.partition_filter("demo", int(gone[-2:]))) == 0
