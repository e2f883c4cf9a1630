"""Housekeeping shrinks a table's history and keeps every row, directly and through Dagster."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import tables as storage
from indexer_core.storage.housekeeping import optimize_index
from tests.reliability.fakes import HashEmbedder
from tests.reliability.tables import assert_clean, snapshot


def _index(db_uri: str, root: Path) -> None:
    chunk_partition(db_uri, "hk", str(root), 0, IndexSettings(shards=1, use_git=False))
    embed_partition(db_uri, "hk", 0, HashEmbedder())


def test_optimize_keeps_rows_and_drops_old_versions(tmp_path: Path, small_repo: Path) -> None:
    db_uri = str(tmp_path / "db")
    _index(db_uri, small_repo)
    for step in range(5):
        (small_repo / "pkg0/mod0.py").write_text(f"def step():\n    return {step}\n")
        _index(db_uri, small_repo)
    before = snapshot(db_uri)
    report = optimize_index(db_uri, grace=timedelta(0))
    chunks = next(t for t in report.tables if t.table == storage.CHUNKS)
    assert chunks.versions_before > 5 and chunks.versions_after == 1
    assert chunks.bytes_after < chunks.bytes_before
    assert snapshot(db_uri) == before
    assert_clean(db_uri)
    _index(db_uri, small_repo)  # writes still work on the compacted tables
    assert snapshot(db_uri) == before


def test_housekeeping_job_and_schedule_are_defined(tmp_path: Path, small_repo: Path) -> None:
    from orchestration.definitions import defs

    db_uri = str(tmp_path / "db")
    _index(db_uri, small_repo)
    job = defs.resolve_job_def("housekeeping_job")
    result = job.execute_in_process(
        run_config={
            "resources": {"code_index": {"config": {"db_uri": db_uri}}},
            "ops": {"optimize_tables": {"config": {"grace_minutes": 0}}},
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert defs.resolve_schedule_def("weekly_housekeeping").cron_schedule == "0 4 * * 0"
    assert len(storage.connect(db_uri).open_table(storage.CHUNKS).list_versions()) == 1


def test_sensor_starts_housekeeping_once_a_table_is_crowded(
    tmp_path: Path, small_repo: Path, monkeypatch
) -> None:
    from orchestration import housekeeping as hk
    from orchestration.resources import CodeIndexResource

    db_uri = str(tmp_path / "db")
    _index(db_uri, small_repo)
    monkeypatch.setattr(hk, "MAX_FRAGMENTS", 3)
    with dg.DagsterInstance.ephemeral() as instance:

        def tick():
            context = dg.build_sensor_context(
                instance=instance, resources={"code_index": CodeIndexResource(db_uri=db_uri)}
            )
            return hk.housekeeping_when_crowded(context)

        assert isinstance(tick(), dg.SkipReason)  # one run: a fragment or two per table
        for step in range(
            4
        ):  # four incremental runs, each editing another file: a fragment more each
            (small_repo / f"pkg{step}/mod{step}.py").write_text(f"def step():\n    return {step}\n")
            _index(db_uri, small_repo)
        assert storage.CHUNKS in hk.crowded_tables(db_uri, 3)
        request = tick()
        assert isinstance(request, dg.RunRequest) and "chunks=" in request.run_key
        optimize_index(db_uri)  # what the requested run does (default grace: compaction only)
        assert hk.crowded_tables(db_uri, 3) == {}
        assert isinstance(tick(), dg.SkipReason)


def _versions(n: int) -> list[str]:
    return [f"def edited():\n    return {i} * 7 + {i}\n" for i in range(n)]


def test_cache_pruning_drops_the_oldest_stale_vectors_and_keeps_live_ones(
    tmp_path: Path, small_repo: Path
) -> None:
    from indexer_core.storage.housekeeping import prune_embedding_cache

    db_uri = str(tmp_path / "db")
    target = small_repo / "pkg0/mod0.py"
    edits = _versions(5)
    for text in edits:  # each edit makes the last one's vector stale
        target.write_text(text)
        _index(db_uri, small_repo)
    db = storage.connect(db_uri)
    cache_rows = db.open_table(storage.EMBEDDING_CACHE).count_rows()

    pruning = prune_embedding_cache(db_uri, stale_floor=2, live_share=0.0)
    assert pruning is not None
    assert (pruning.stale, pruning.kept, pruning.pruned) == (4, 2, 2)
    assert db.open_table(storage.EMBEDDING_CACHE).count_rows() == cache_rows - 2
    # Every live vector is still in the cache: a rebuild of the vectors table reuses them all.
    assert pruning.live == len(
        set(db.open_table(storage.VECTORS).to_arrow().column("content_hash").to_pylist())
    )

    def embedded_after_writing(text: str) -> int:
        target.write_text(text)
        chunk_partition(db_uri, "hk", str(small_repo), 0, IndexSettings(shards=1, use_git=False))
        return embed_partition(db_uri, "hk", 0, HashEmbedder()).embedded

    assert embedded_after_writing(edits[3]) == 0  # among the two newest stale: kept, reused
    assert embedded_after_writing(edits[0]) == 1  # the oldest: pruned, embedded again
    assert (
        prune_embedding_cache(db_uri, stale_floor=10, live_share=0.0).pruned == 0
    )  # under the allowance


def test_housekeeping_prunes_the_cache_before_compacting(
    tmp_path: Path, small_repo: Path, monkeypatch
) -> None:
    from indexer_core.storage import housekeeping

    db_uri = str(tmp_path / "db")
    for text in _versions(3):
        (small_repo / "pkg1/mod1.py").write_text(text)
        _index(db_uri, small_repo)
    monkeypatch.setattr(housekeeping, "CACHE_STALE_FLOOR", 0)
    monkeypatch.setattr(housekeeping, "CACHE_LIVE_SHARE", 0.0)
    report = optimize_index(db_uri, grace=timedelta(0))
    assert report.cache is not None and report.cache.pruned == 2 and report.cache.kept == 0
    cache = next(t for t in report.tables if t.table == storage.EMBEDDING_CACHE)
    assert cache.versions_after == 1
    assert_clean(db_uri)
