"""The sensor's change view: its cached manifest summary and its shortcut for unchanged shards
must give exactly what a full re-derivation gives, whatever happened to the tree or the tables."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from indexer_core.indexing import manifest as changes
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.partitioning import shard_of
from indexer_core.indexing.settings import IndexSettings
from indexer_core.indexing.staleness import detect_changes
from indexer_core.indexing.watching import TreeWatch, scanned_directories
from tests.conftest import git, versions_from_scratch, write_tree

SHARDS = 8
SETTINGS = IndexSettings(shards=SHARDS, use_git=False)


def _tree(tag: str, n: int = 20) -> dict[str, str]:
    return {f"pkg/mod_{i}.py": f"def f{i}(x):\n    return x + {i}  # {tag}\n" for i in range(n)}


def _index(db_uri: str, root: Path, settings: IndexSettings = SETTINGS) -> None:
    for shard in range(settings.shards):
        chunk_partition(db_uri, "repo", str(root), shard, settings)


def _full(db_uri: str, root: Path, settings: IndexSettings) -> dict[int, str]:
    """Disk versions the slow way: every shard hashed from the scan, no summary involved."""
    return versions_from_scratch(root, settings, db_uri)


def test_cached_view_tracks_edits_runs_and_matches_the_full_derivation(db_uri, tmp_path) -> None:
    root = write_tree(tmp_path / "repo", _tree("a"))
    _index(db_uri, root)
    first = detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False)
    assert not first.stale and first.disk_versions == _full(db_uri, root, SETTINGS)
    cached = changes.manifest_summary(db_uri, "repo", SETTINGS)
    again = detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False)
    assert not again.stale and changes.manifest_summary(db_uri, "repo", SETTINGS) is cached

    # An edit, an added file and a deletion: exactly their shards, with the full versions.
    (root / "pkg" / "mod_3.py").write_text("def f3(x):\n    return x - 3\n")
    (root / "pkg" / "new.py").write_text("def g():\n    return 1\n")
    (root / "pkg" / "mod_7.py").unlink()
    touched = {shard_of(p, SHARDS) for p in ("pkg/mod_3.py", "pkg/new.py", "pkg/mod_7.py")}
    edited = detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False)
    assert set(edited.stale) == touched
    assert edited.disk_versions == _full(db_uri, root, SETTINGS)

    # The run writes `files`: the summary is re-read and nothing is stale any more.
    for shard in sorted(touched):
        chunk_partition(db_uri, "repo", str(root), shard, SETTINGS)
    assert changes.manifest_summary(db_uri, "repo", SETTINGS) is not cached
    after = detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False)
    assert not after.stale and after.disk_versions == _full(db_uri, root, SETTINGS)


def test_rebuilt_table_with_the_same_version_and_rows_is_not_served_from_cache(
    db_uri, tmp_path
) -> None:
    """Same operations on another tree give the same table version and row count; the
    versions directory's identity still tells the rebuilt table apart."""
    root = write_tree(tmp_path / "repo", _tree("a"))
    _index(db_uri, root)
    assert not detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False).stale
    shutil.rmtree(db_uri)
    other = write_tree(tmp_path / "other", _tree("b"))
    _index(db_uri, other)
    # The index now describes `other`: every shard of `root` with files differs from it.
    stale = detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False).stale
    assert set(stale) == {shard_of(p, SHARDS) for p in _tree("a")}


def test_new_shard_count_compares_under_the_new_sharding(db_uri, tmp_path) -> None:
    root = write_tree(tmp_path / "repo", _tree("a", 40))
    _index(db_uri, root)
    wider = IndexSettings(shards=16, use_git=False)
    seen = detect_changes(db_uri, "repo", str(root), wider, include_vectors=False)
    assert seen.disk_versions == _full(db_uri, root, wider)
    # Old shard numbers in the manifest no longer match: shards regrouped are stale.
    moved = {shard_of(p, 16) for p in _tree("a", 40) if shard_of(p, 16) != shard_of(p, SHARDS)}
    assert moved and moved <= set(seen.stale)


needs_inotify = pytest.mark.skipif(
    TreeWatch("/").unavailable is not None, reason="inotify is not available on this platform"
)


@needs_inotify
def test_tree_watch_answers_no_change_only_when_nothing_happened(tmp_path) -> None:
    root = write_tree(tmp_path / "repo", {"a/b/one.py": "x = 1\n", "two.py": "y = 2\n"})
    watch = TreeWatch(str(root))
    assert watch.changed()  # nothing covered yet

    def scan(*walked: str) -> None:  # what a tick does when it scans: mark the start, then cover
        start = watch.before_scan()
        watch.covered(scanned_directories(["a/b/one.py", "two.py"], walked), start)

    scan()
    assert watch.watched == 3 and watch.changed()  # watches added after the scan began: once more
    scan()
    assert not watch.changed() and not watch.changed()

    (root / "a" / "b" / "one.py").write_text("x = 10\n")  # an edit deep down
    assert watch.changed()
    scan()
    assert not watch.changed()

    os.utime(root / "two.py", ns=(1, 1))  # only the mtime: still a change to look at
    assert watch.changed()
    scan()

    (root / "a" / "c").mkdir()  # a new directory: seen, then watched after the next scan
    assert watch.changed()
    scan("a/c")
    assert watch.changed()  # its watch is new
    scan("a/c")
    assert not watch.changed()
    (root / "a" / "c" / "three.py").write_text("z = 3\n")
    assert watch.changed()

    (root / "a").rename(root / "moved")  # the watches' paths are stale: all rebuilt
    assert watch.changed() and watch.watched == 0
    watch.close()


@needs_inotify
def test_watched_detection_skips_the_scan_until_something_changes(db_uri, tmp_path) -> None:
    root = write_tree(tmp_path / "repo", _tree("a"))
    _index(db_uri, root)
    ticks = [
        detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False, watch=True)
        for _ in range(4)
    ]
    assert [t.scanned for t in ticks] == [True, True, False, False]
    assert all(not t.stale for t in ticks) and ticks[3].files_seen == 20
    assert ticks[3].disk_versions == _full(db_uri, root, SETTINGS)

    (root / "pkg" / "mod_5.py").write_text("def f5(x):\n    return 5\n")
    edited = detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False, watch=True)
    assert edited.scanned and list(edited.stale) == [shard_of("pkg/mod_5.py", SHARDS)]
    assert edited.disk_versions == _full(db_uri, root, SETTINGS)
    # The next quiet tick still reports the edit as stale: the index has not caught up.
    quiet = detect_changes(db_uri, "repo", str(root), SETTINGS, include_vectors=False, watch=True)
    assert not quiet.scanned and list(quiet.stale) == [shard_of("pkg/mod_5.py", SHARDS)]
    chunk_partition(db_uri, "repo", str(root), shard_of("pkg/mod_5.py", SHARDS), SETTINGS)
    assert not detect_changes(
        db_uri, "repo", str(root), SETTINGS, include_vectors=False, watch=True
    ).stale

    # The timer still forces a full scan, even when the watch saw nothing.
    forced = detect_changes(
        db_uri, "repo", str(root), SETTINGS, include_vectors=False, watch=True, full_scan_every=0
    )
    assert forced.scanned


@needs_inotify
def test_watch_in_a_git_checkout_sees_a_file_made_in_a_new_empty_directory(
    db_uri, tmp_path
) -> None:
    """git lists files, not directories: a new directory with nothing in it must still be
    watched, or a file made in it later would wait for the timed full scan."""
    root = write_tree(tmp_path / "repo", {**_tree("a", 4), ".gitignore": "build/\n"})
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    settings = IndexSettings(shards=SHARDS)  # use_git: the scan lists files through git
    _index(db_uri, root, settings)
    quiet = [
        detect_changes(db_uri, "repo", str(root), settings, include_vectors=False, watch=True)
        for _ in range(3)
    ]
    assert [t.scanned for t in quiet] == [True, True, False]
    (root / "fresh" / "deeper").mkdir(parents=True)
    assert detect_changes(
        db_uri, "repo", str(root), settings, include_vectors=False, watch=True
    ).scanned
    settle = detect_changes(db_uri, "repo", str(root), settings, include_vectors=False, watch=True)
    assert settle.scanned and not settle.stale  # the new watches were added after that scan
    assert not detect_changes(
        db_uri, "repo", str(root), settings, include_vectors=False, watch=True
    ).scanned
    (root / "fresh" / "deeper" / "late.py").write_text("def late():\n    return 1\n")
    seen = detect_changes(db_uri, "repo", str(root), settings, include_vectors=False, watch=True)
    assert seen.scanned and list(seen.stale) == [shard_of("fresh/deeper/late.py", SHARDS)]
    # An ignored directory is not watched: a build writing there costs no scan.
    (root / "build").mkdir()
    detect_changes(db_uri, "repo", str(root), settings, include_vectors=False, watch=True)
    detect_changes(db_uri, "repo", str(root), settings, include_vectors=False, watch=True)
    (root / "build" / "out.o").write_bytes(b"\0" * 16)
    assert not detect_changes(
        db_uri, "repo", str(root), settings, include_vectors=False, watch=True
    ).scanned


def test_a_tree_with_binary_files_is_not_stale_after_indexing(
    db_uri, tmp_path, embedder, monkeypatch
) -> None:
    """Skipped files with a content hash (binary, minified) count in every view of staleness
    alike: the sensor's, `code-index index`'s and the MCP `index_status` tool's."""
    from indexer_core.indexing.embed_step import embed_partition
    from indexer_core.storage import registry
    from orchestration.status import index_status, partition_status, pending_changes

    files = {**_tree("b", 6), "img/logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4}
    root = write_tree(tmp_path / "repo", files)
    settings = IndexSettings(shards=2, use_git=False)
    monkeypatch.setenv("CODE_INDEX_SHARDS", "2")  # what `index_status` reads from the config
    registry.register(db_uri, "repo", str(root))
    for shard in range(settings.shards):
        report = chunk_partition(db_uri, "repo", str(root), shard, settings)
        embed_partition(db_uri, "repo", shard, embedder)
        if any(s.path == "img/logo.png" for s in report.skipped):
            assert [s.reason for s in report.skipped] == ["binary"]
    assert detect_changes(db_uri, "repo", str(root), settings).stale == {}
    assert pending_changes(db_uri, "repo", str(root), settings).stale == {}
    assert not any(p["stale"] for p in partition_status(db_uri, "repo", str(root), settings))
    assert index_status(db_uri)["stale_partitions"] == []
    (root / "img" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(255)) * 4)
    changes = pending_changes(db_uri, "repo", str(root), settings)
    assert list(changes.stale.values()) == ["files changed"]
    assert changes.changed_bytes == (root / "img" / "logo.png").stat().st_size
