"""Partition indexing on real files, a real LanceDB directory and the real packaged model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest

from indexer_core.discovery import skip_reasons
from indexer_core.embedding.model import load_embedder
from indexer_core.embedding.model_location import resolve_model_path
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.partitioning import shard_of
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import integrity
from indexer_core.storage import tables as storage
from tests.conftest import MODEL, write_tree

SETTINGS = IndexSettings(shards=1)


def _index(db_uri: str, root: Path, embedder, settings: IndexSettings = SETTINGS):
    reports = [
        chunk_partition(db_uri, "repo", str(root), s, settings) for s in range(settings.shards)
    ]
    embeds = [embed_partition(db_uri, "repo", s, embedder) for s in range(settings.shards)]
    return reports, embeds


def _table(db_uri: str, name: str):
    return storage.connect(db_uri).open_table(name).to_arrow()


def test_full_index_then_noop_rerun(db_uri, sample_repo, embedder) -> None:
    (chunked,), (embedded,) = _index(db_uri, sample_repo, embedder)
    assert chunked.parsed == 5 and chunked.files == 5 and chunked.chunks_added > 5
    assert embedded.embedded == chunked.chunks_total and embedded.chunks == chunked.chunks_total
    chunks = _table(db_uri, storage.CHUNKS)
    assert set(chunks.column("language").to_pylist()) == {
        "python",
        "javascript",
        "go",
        "markdown",
        "text",
    }
    app = [r for r in chunks.to_pylist() if r["path"] == "src/app.py"]
    module = next(r for r in app if r["kind"] == "module")
    function = next(r for r in app if r["name"] == "parse_header")
    greeter = next(r for r in app if "Greeter" in r["name"])
    assert function["kind"] == "function" and "class Greeter" not in function["content"]
    assert function["parent_id"] == greeter["parent_id"] == module["chunk_id"]
    # An unchanged rerun parses nothing and embeds nothing.
    (again,), (again_embed,) = _index(db_uri, sample_repo, embedder)
    assert again.parsed == 0 and again.unchanged == 5 and not again.changed
    assert again_embed.embedded == 0 and again_embed.unchanged == chunked.chunks_total
    for check in (
        integrity.check_one_vector_per_chunk(db_uri),
        integrity.check_unique_chunk_ids(db_uri),
        integrity.check_vectors_sane(db_uri, embedder.dim),
    ):
        assert check.passed, check.description


def test_edit_delete_and_rename_touch_only_what_changed(db_uri, sample_repo, embedder) -> None:
    _index(db_uri, sample_repo, embedder)
    (sample_repo / "src/app.py").write_text(
        (sample_repo / "src/app.py").read_text() + "\n\ndef extra():\n    return 42\n"
    )
    (sample_repo / "notes.txt").unlink()
    shutil.move(sample_repo / "lib/main.go", sample_repo / "lib/renamed.go")
    (report,), (embedded,) = _index(db_uri, sample_repo, embedder)
    assert (report.modified, report.deleted, report.added, report.renamed, report.parsed) == (
        1,
        2,
        1,
        1,
        2,
    )
    paths = set(_table(db_uri, storage.CHUNKS).column("path").to_pylist())
    assert "notes.txt" not in paths and "lib/main.go" not in paths and "lib/renamed.go" in paths
    vector_paths = set(_table(db_uri, storage.VECTORS).column("path").to_pylist())
    assert vector_paths == paths
    # Unchanged chunks of the edited file come from the cache or stay; only new texts are embedded.
    assert 0 < embedded.embedded < embedded.chunks
    assert integrity.check_one_vector_per_chunk(db_uri).passed


def test_hostile_files_are_recorded_not_fatal(db_uri, tmp_path, embedder) -> None:
    root = write_tree(
        tmp_path / "hostile",
        {
            "bin.py": b"\x00\x01\x02binary",
            "latin1.py": b"name = 'caf\xe9'\n",
            "utf16.py": "\ufeffx = 1\n".encode("utf-16"),
            "min.js": "var a=1;" * 4000,
            "empty.py": "",
            "comments.py": "# only\n# comments\n",
            "crlf.py": b"def f():\r\n    return 1\r\n",
            "ok.py": "def ok():\n    return 1\n",
        },
    )
    (report,), _ = _index(db_uri, root, embedder)
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {"bin.py": skip_reasons.BINARY, "min.js": skip_reasons.MINIFIED}
    assert "latin1.py" in report.notes
    files = {r["path"]: r for r in _table(db_uri, storage.FILES).to_pylist()}
    assert files["bin.py"]["status"] == "skipped" and files["bin.py"]["reason"] == "binary"
    assert files["empty.py"]["status"] == "indexed" and files["empty.py"]["chunks"] == 0
    chunks = _table(db_uri, storage.CHUNKS)
    crlf = next(r for r in chunks.to_pylist() if r["path"] == "crlf.py")
    assert "\r" not in crlf["content"]
    # A skipped file is not re-read when it has not changed.
    (again,), _ = _index(db_uri, root, embedder)
    assert again.parsed == 0 and {s.path for s in again.skipped} == {"bin.py", "min.js"}


def test_every_chunk_fits_the_model_untruncated(db_uri, sample_repo, embedder) -> None:
    write_tree(
        sample_repo,
        {
            "big.py": "def huge():\n"
            + "".join(f"    value_{i} = compute({i}, 'x' * {i})\n" for i in range(600))
        },
    )
    _index(db_uri, sample_repo, embedder)
    chunks = _table(db_uri, storage.CHUNKS)
    tokenizer = embedder.model.tokenizer
    lengths = [len(tokenizer(t)["input_ids"]) for t in chunks.column("embed_text").to_pylist()]
    assert max(lengths) <= embedder.max_tokens
    assert sum(1 for r in chunks.to_pylist() if r["path"] == "big.py") > 3


def test_model_change_reembeds_without_reparsing(db_uri, sample_repo, embedder) -> None:
    (first,), _ = _index(db_uri, sample_repo, embedder)
    other = load_embedder(
        str(resolve_model_path(MODEL)), "cpu", 16
    )  # same weights, another model name
    assert other.model_name != embedder.model_name
    settings = IndexSettings(shards=1, model=other.model_name)
    (report,), (embedded,) = _index(db_uri, sample_repo, other, settings)
    assert report.parsed == 0  # same tokenizer: chunks are still valid
    assert embedded.embedded == first.chunks_total
    vectors = _table(db_uri, storage.VECTORS)
    assert pc.all(pc.equal(vectors.column("model"), other.model_name)).as_py()


def test_embedding_cache_serves_moved_code(db_uri, tmp_path, embedder) -> None:
    a = write_tree(tmp_path / "a", {"x.py": "def same():\n    return 1\n"})
    chunk_partition(db_uri, "repo", str(a), 0, SETTINGS)
    embed_partition(db_uri, "repo", 0, embedder)
    (a / "x.py").unlink()
    chunk_partition(db_uri, "repo", str(a), 0, SETTINGS)
    embed_partition(db_uri, "repo", 0, embedder)
    assert _table(db_uri, storage.VECTORS).num_rows == 0
    (a / "x.py").write_text("def same():\n    return 1\n")  # back again, as after a branch switch
    chunk_partition(db_uri, "repo", str(a), 0, SETTINGS)
    report = embed_partition(db_uri, "repo", 0, embedder)
    assert report.embedded == 0 and report.reused == 1


def test_embedding_worker_matches_embed_partition_and_reuses_the_cache(
    db_uri, tmp_path, sample_repo, embedder
) -> None:
    """The pipelined worker (write of one partition while the next is encoded) gives the
    same vectors as `embed_partition`, takes known texts from the cache, and lets go of
    each partition's lock once its write is done."""
    from indexer_core.indexing.embed_worker import EmbeddingWorker
    from indexer_core.storage.locking import partition_lock

    settings = IndexSettings(shards=4)
    for shard in range(4):
        chunk_partition(db_uri, "repo", str(sample_repo), shard, settings)
    worker = EmbeddingWorker(db_uri, embedder)
    futures = [worker.submit("repo", shard) for shard in range(4)]
    reports = [f.result() for f in futures]
    worker.close()
    chunks = _table(db_uri, storage.CHUNKS)
    assert sum(r.embedded for r in reports) == chunks.num_rows > 4
    for shard in range(4):
        with partition_lock(db_uri, "repo", shard):  # released: this does not wait
            pass
    for check in (
        integrity.check_one_vector_per_chunk(db_uri),
        integrity.check_unique_chunk_ids(db_uri),
        integrity.check_vectors_sane(db_uri, embedder.dim),
    ):
        assert check.passed, check.description

    # The same tree indexed by embed_partition gives the same vector for every chunk.
    other_db = str(tmp_path / "other-db")
    _index(other_db, sample_repo, embedder, settings)
    mine = {r["chunk_id"]: r["vector"] for r in _table(db_uri, storage.VECTORS).to_pylist()}
    theirs = {r["chunk_id"]: r["vector"] for r in _table(other_db, storage.VECTORS).to_pylist()}
    assert mine.keys() == theirs.keys()
    assert all(max(abs(a - b) for a, b in zip(mine[k], theirs[k])) < 1e-4 for k in mine)

    # Code moved to another repository: a new worker finds every text in the cache.
    moved = tmp_path / "moved"
    shutil.copytree(sample_repo, moved)
    chunk_partition(db_uri, "copy", str(moved), 0, IndexSettings(shards=1))
    worker = EmbeddingWorker(db_uri, embedder)
    report = worker.submit("copy", 0).result()
    worker.close()
    assert report.embedded == 0 and report.reused == report.chunks > 0

    # Two new repositories with one new file in common, submitted back to back: the second
    # takes the shared texts from the first one's vectors (its write may still be in flight).
    for name in ("fork1", "fork2"):
        fork = tmp_path / name
        shutil.copytree(sample_repo, fork)
        (fork / "extra.py").write_text(
            "def brand_new_helper(values):\n    return sorted(set(values))\n"
        )
        chunk_partition(db_uri, name, str(fork), 0, IndexSettings(shards=1))
    worker = EmbeddingWorker(db_uri, embedder)
    first, second = worker.submit("fork1", 0), worker.submit("fork2", 0)
    worker.close()
    assert first.result().embedded >= 1
    assert second.result().embedded == 0 and second.result().reused == second.result().chunks
    assert integrity.check_one_vector_per_chunk(db_uri).passed


def test_worker_that_fails_or_is_cancelled_lets_go_of_every_partition(db_uri, sample_repo) -> None:
    """Partitions read ahead of a failing encoder, or never encoded because the worker was
    closed, leave no partition locked."""
    import threading

    from indexer_core.indexing.embed_worker import EmbeddingWorker
    from indexer_core.storage.locking import partition_lock
    from tests.reliability.fakes import HashEmbedder

    class Failing(HashEmbedder):
        def encode(self, texts):
            raise RuntimeError("device lost")

    settings = IndexSettings(shards=4)
    for shard in range(4):
        chunk_partition(db_uri, "repo", str(sample_repo), shard, settings)
    worker = EmbeddingWorker(db_uri, Failing())
    futures = [worker.submit("repo", shard) for shard in range(4)]
    with pytest.raises(RuntimeError, match="device lost"):
        futures[0].result(timeout=60)
    worker.close(cancel=True)
    for shard in range(4):
        taker = threading.Thread(
            target=lambda s=shard: partition_lock(db_uri, "repo", s).__enter__()
        )
        taker.start()
        taker.join(timeout=10)
        assert not taker.is_alive(), f"shard {shard} is still locked"


def test_a_synchronous_encoder_that_fails_once_is_only_called_from_one_thread(
    db_uri, tmp_path
) -> None:
    """An encoder without `encode_async` (the torch model) fails on one partition: the next
    one, which shares its texts, encodes them itself on the encoder thread (never from a
    second thread at the same time), and lands whole."""
    import threading

    from indexer_core.indexing.embed_worker import EmbeddingWorker
    from tests.reliability.fakes import HashEmbedder

    calls: list[str] = []  # the thread of each encode

    class FailsFirst(HashEmbedder):
        def encode(self, texts):
            calls.append(threading.current_thread().name)
            if len(calls) == 1:
                raise RuntimeError("device lost")
            return super().encode(texts)

    for name in ("first", "second"):
        root = write_tree(tmp_path / name, {"shared.py": "def shared_helper(v):\n    return v\n"})
        chunk_partition(db_uri, name, str(root), 0, SETTINGS)
    worker = EmbeddingWorker(db_uri, FailsFirst())
    first, second = worker.submit("first", 0), worker.submit("second", 0)
    with pytest.raises(RuntimeError, match="device lost"):
        first.result(timeout=60)
    report = second.result(timeout=60)
    worker.close()
    assert report.embedded == report.chunks > 0
    assert len(calls) == 2 and all(t.startswith("embedding-encoder") for t in calls)
    assert integrity.check_one_vector_per_chunk(db_uri, repo="second").passed


def test_manifest_compaction_keeps_rows_and_the_change_view(db_uri, tmp_path) -> None:
    """A run leaves a fragment per shard in `files`; compacting them changes no row, no
    version the sensor compares, and a later edit is still found."""
    from indexer_core.indexing.manifest import read_manifest
    from indexer_core.indexing.staleness import detect_changes
    from indexer_core.storage.housekeeping import compact_manifest

    tree = {f"pkg/mod_{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(24)}
    root = write_tree(tmp_path / "repo", tree)
    settings = IndexSettings(shards=8, use_git=False)
    for shard in range(8):
        chunk_partition(db_uri, "repo", str(root), shard, settings)
    files = storage.connect(db_uri).open_table(storage.FILES)
    assert files.stats()["fragment_stats"]["num_fragments"] >= 5
    before = read_manifest(db_uri, "repo").sort_by("path")
    report = compact_manifest(db_uri)
    assert report is not None and report.fragments_before >= 5 and report.fragments_after == 1
    assert (
        storage.connect(db_uri).open_table(storage.FILES).stats()["fragment_stats"]["num_fragments"]
        == 1
    )
    assert read_manifest(db_uri, "repo").sort_by("path").equals(before)
    assert compact_manifest(db_uri) is None  # nothing left to merge
    assert not detect_changes(db_uri, "repo", str(root), settings, include_vectors=False).stale
    (root / "pkg" / "mod_3.py").write_text("def f3(x):\n    return x - 3\n")
    changed = detect_changes(db_uri, "repo", str(root), settings, include_vectors=False)
    assert list(changed.stale) == [shard_of("pkg/mod_3.py", 8)] and changed.files_hashed == 1


def test_embedding_worker_close_with_cancel_settles_every_future(
    db_uri, sample_repo, embedder
) -> None:
    """A consumer that fails closes its worker with `cancel`: partitions not yet started are
    cancelled (nobody waits on them forever); the one already running finishes and is written."""
    from concurrent.futures import CancelledError

    from indexer_core.indexing.embed_worker import EmbeddingWorker

    settings = IndexSettings(shards=4)
    for shard in range(4):
        chunk_partition(db_uri, "repo", str(sample_repo), shard, settings)
    worker = EmbeddingWorker(db_uri, embedder)
    futures = [worker.submit("repo", shard) for shard in range(4)]
    worker.close(cancel=True)
    settled = []
    for future in futures:
        assert future.done()
        try:
            settled.append(future.result().shard)
        except CancelledError:
            pass
    assert settled and settled == sorted(settled)  # finished partitions are a prefix, in order
    assert integrity.check_unique_chunk_ids(db_uri).passed


def _rows_by_key(db_uri: str) -> tuple[list[str], list[str]]:
    chunks = _table(db_uri, storage.CHUNKS).column("chunk_id").to_pylist()
    files = _table(db_uri, storage.FILES).column("file_id").to_pylist()
    return chunks, files


def test_a_first_build_appends_and_a_new_shard_count_still_moves_rows(db_uri, tmp_path) -> None:
    """A partition's first build appends its rows (nothing to merge with); where the files
    already have rows under another shard count, the rows move instead of doubling."""
    files = {f"pkg/m{n}.py": f"def f{n}(x):\n    return x + {n}\n" for n in range(12)}
    root = write_tree(tmp_path / "repo", files)
    fresh = str(tmp_path / "fresh")
    for shard in range(3):
        chunk_partition(fresh, "repo", str(root), shard, IndexSettings(shards=3))
    for shard in range(2):
        chunk_partition(db_uri, "repo", str(root), shard, IndexSettings(shards=2))
    for shard in (2, 1, 0):  # the partition new to the layout first
        chunk_partition(db_uri, "repo", str(root), shard, IndexSettings(shards=3))
        chunk_ids, file_ids = _rows_by_key(db_uri)
        assert len(chunk_ids) == len(set(chunk_ids)) and len(file_ids) == len(set(file_ids))
    assert len(chunk_ids) == len(set(chunk_ids)) and len(file_ids) == len(set(file_ids)) == 12
    assert sorted(chunk_ids) == sorted(_rows_by_key(fresh)[0])
    layout = _table(db_uri, storage.FILES).to_pylist()
    assert all(r["shard"] == shard_of(r["path"], 3) for r in layout)


def test_chunks_a_crashed_build_left_without_a_manifest_are_replaced_not_doubled(
    db_uri, sample_repo
) -> None:
    """A run that died between the chunks' commit and the manifest's leaves chunk rows the
    manifest does not know: the rerun must merge over them, not append beside them."""
    first = chunk_partition(db_uri, "repo", str(sample_repo), 0, SETTINGS)
    storage.connect(db_uri).open_table(storage.FILES).delete("repo = 'repo'")
    again = chunk_partition(db_uri, "repo", str(sample_repo), 0, SETTINGS)
    chunk_ids, file_ids = _rows_by_key(db_uri)
    assert again.parsed == first.parsed and again.chunks_total == first.chunks_total
    assert len(chunk_ids) == len(set(chunk_ids)) == first.chunks_total
    assert len(file_ids) == first.files + len(first.skipped)


def _rows(db_uri: str, name: str, key: str) -> list[dict]:
    rows = _table(db_uri, name).drop_columns(["chunker"] if name == storage.FILES else [])
    return sorted(rows.to_pylist(), key=lambda r: r[key])


def test_chunk_partitions_in_order_equal_one_at_a_time(db_uri, tmp_path) -> None:
    """The overlapped runner leaves the tables a partition-by-partition run leaves, reports
    in the jobs' order, and a partition that fails is reported while the others land."""
    from indexer_core.indexing.chunk_step import PartitionJob, chunk_partitions

    tree = {f"pkg/mod_{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(30)}
    root = str(write_tree(tmp_path / "repo", tree))
    settings = IndexSettings(shards=6, use_git=False)
    alone = str(tmp_path / "alone")
    expected = [chunk_partition(alone, "repo", root, s, settings) for s in range(6)]

    jobs = [PartitionJob("repo", root, s) for s in range(3)]
    jobs += [PartitionJob("bad/name", root, 3)]  # refused before anything is written
    jobs += [PartitionJob("repo", root, s) for s in range(3, 6)]
    outcomes = list(chunk_partitions(db_uri, jobs, settings))
    assert [job for job, _ in outcomes] == jobs
    failed = [(job, out) for job, out in outcomes if isinstance(out, Exception)]
    assert [job.repo for job, _ in failed] == ["bad/name"]
    reports = [out for _, out in outcomes if not isinstance(out, Exception)]
    assert [(r.shard, r.files, r.chunks_total) for r in reports] == [
        (r.shard, r.files, r.chunks_total) for r in expected
    ]
    assert _rows(db_uri, storage.CHUNKS, "chunk_id") == _rows(alone, storage.CHUNKS, "chunk_id")
    assert _rows(db_uri, storage.FILES, "file_id") == _rows(alone, storage.FILES, "file_id")


def test_chunk_partitions_reports_each_one_while_the_next_parses(
    db_uri, tmp_path, monkeypatch
) -> None:
    """A partition is reported the moment its writes commit, not after the next one's parse:
    the embedding consumer starts on the first partition while the second is still parsed.
    Here the second parse waits until the first partition has been reported."""
    import threading

    from indexer_core.indexing import chunk_step
    from indexer_core.indexing.chunk_step import ChunkReport, PartitionJob, chunk_partitions

    tree = {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(12)}
    root = str(write_tree(tmp_path / "repo", tree))
    settings = IndexSettings(shards=2, use_git=False)
    first_reported = threading.Event()
    real_plan = chunk_step._plan

    def plan(db, repo, root, shard, *args):
        if shard == 1 and not first_reported.wait(timeout=20):
            raise AssertionError("shard 0 was not reported before shard 1's parse ended")
        return real_plan(db, repo, root, shard, *args)

    monkeypatch.setattr(chunk_step, "_plan", plan)
    outcomes = chunk_partitions(db_uri, [PartitionJob("repo", root, s) for s in (0, 1)], settings)
    job, first = next(outcomes)
    first_reported.set()
    assert job.shard == 0 and isinstance(first, ChunkReport) and first.files
    # Committed when reported: its chunks are in the table already.
    assert len(_table(db_uri, storage.CHUNKS)) == first.chunks_total
    [(job, second)] = list(outcomes)
    assert job.shard == 1 and isinstance(second, ChunkReport) and second.files


def test_chunk_partitions_never_holds_a_lock_while_waiting_for_another(db_uri, tmp_path) -> None:
    """With the next partition's lock held elsewhere, the runner first commits and releases
    the partition it holds: a consumer waiting for that one is never blocked in a cycle."""
    import threading
    import time

    from indexer_core.indexing.chunk_step import PartitionJob, chunk_partitions
    from indexer_core.storage.locking import try_partition_lock

    tree = {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(12)}
    root = str(write_tree(tmp_path / "repo", tree))
    settings = IndexSettings(shards=2, use_git=False)
    elsewhere = try_partition_lock(db_uri, "repo", 1)
    assert elsewhere is not None
    outcomes: list = []
    runner = threading.Thread(
        target=lambda: outcomes.extend(
            chunk_partitions(db_uri, [PartitionJob("repo", root, s) for s in (0, 1)], settings)
        ),
        daemon=True,
    )
    try:
        runner.start()
        deadline = time.monotonic() + 60
        first = None
        while first is None and time.monotonic() < deadline:
            time.sleep(0.05)
            first = try_partition_lock(db_uri, "repo", 0)  # free once shard 0 is committed
        assert first is not None, "shard 0's lock was kept while waiting for shard 1's"
        first.release()
        assert runner.is_alive()  # shard 1 still waits for its lock
        assert [job.shard for job, _ in outcomes] in ([], [0])
    finally:
        elsewhere.release()
    runner.join(60)
    assert [job.shard for job, _ in outcomes] == [0, 1]
    assert all(not isinstance(out, Exception) and out.files for _, out in outcomes)


def test_smallest_partition_first(tmp_path) -> None:
    """A step takes its partitions smallest first (bytes of their listed files), so its
    first one lands soonest; a job without a listing counts as empty."""
    from indexer_core.discovery.listing import list_candidates
    from indexer_core.indexing.chunk_step import PartitionJob, smallest_first
    from indexer_core.indexing.partitioning import shard_of

    tree = {f"m{i}.py": "x = 1\n" * (1 + 40 * i) for i in range(24)}
    root = str(write_tree(tmp_path / "repo", tree))
    candidates = list_candidates(root)
    sizes = [0, 0, 0, 0]
    for rel, text in tree.items():
        sizes[shard_of(rel, 4)] += len(text)
    jobs = [PartitionJob("repo", root, s, candidates) for s in range(4)]
    ordered = smallest_first(jobs, 4)
    assert [job.shard for job in ordered] == sorted(range(4), key=sizes.__getitem__)
    assert len(set(sizes)) == 4  # the order is not the shards' own by accident
    unlisted = PartitionJob("other", str(tmp_path), 0)
    assert smallest_first([*jobs, unlisted], 4)[0] is unlisted
