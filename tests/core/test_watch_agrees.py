"""A watched sensor tick must agree with a full scan after any sequence of changes.

Each test settles the watch (a tick answers from the last scan), changes the tree, the git
state or the index, and checks that the next watched tick gives the same disk versions and
stale shards as a full scan and as a derivation from scratch. The sequences are those a review of
the watch tried to break it with; the cases inotify cannot see at all (a hard link edited
from outside the tree, writes through a live memory map, a mount placed inside the tree)
are left to the sensor's timed full scan and are documented in docs/guarantees.md.
"""

import os
import shutil

import pytest

from indexer_core.indexing import manifest
from indexer_core.indexing import staleness as changes
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.indexing.staleness import detect_changes
from indexer_core.indexing.watching import TreeWatch
from tests.conftest import git, versions_from_scratch, write_tree

pytestmark = pytest.mark.skipif(
    TreeWatch("/").unavailable is not None, reason="inotify is not available on this platform"
)

SHARDS = 4
PLAIN = IndexSettings(shards=SHARDS, use_git=False)
GIT = IndexSettings(shards=SHARDS)


def tree(tag="a", n=8):
    return {f"pkg/mod_{i}.py": f"def f{i}(x):\n    return x + {i}  # {tag}\n" for i in range(n)}


def index(db, root, settings):
    for s in range(settings.shards):
        chunk_partition(db, "repo", str(root), s, settings)


def tick(db, root, settings):
    return detect_changes(db, "repo", str(root), settings, include_vectors=False, watch=True)


def settle(db, root, settings):
    """Tick until the watch answers from its last scan (scanned=False)."""
    for _ in range(6):
        t = tick(db, root, settings)
        if not t.scanned:
            return t
    raise AssertionError("watch never settled")


def check(db, root, settings):
    """One watched tick, then the full derivations: all must agree."""
    watched = tick(db, root, settings)
    full = detect_changes(db, "repo", str(root), settings, include_vectors=False)
    slow = versions_from_scratch(root, settings, db)
    assert full.disk_versions == slow
    assert watched.disk_versions == slow, (
        f"watched tick (scanned={watched.scanned}) stale={sorted(watched.stale)} "
        f"but full scan stale={sorted(full.stale)}"
    )
    assert watched.stale == full.stale
    return watched


@pytest.fixture(autouse=True)
def _fresh_state():
    yield
    for t in changes._WATCHED.values():
        t.watch.close()
    changes._WATCHED.clear()
    manifest._SUMMARIES.clear()


@pytest.fixture
def db(db_uri):
    return db_uri


# ---------------------------------------------------------------- ancestor of root replaced
def test_ancestor_renamed_and_new_tree_at_same_path(db, tmp_path):
    root = write_tree(tmp_path / "parent" / "repo", tree("a"))
    index(db, root, PLAIN)
    settle(db, root, PLAIN)
    (tmp_path / "parent").rename(tmp_path / "parent.old")  # e.g. a deploy swapping a release dir
    write_tree(root, tree("b"))  # a different tree at the same path
    check(db, root, PLAIN)


def test_symlinked_ancestor_repointed(db, tmp_path):
    write_tree(tmp_path / "A" / "repo", tree("a"))
    write_tree(tmp_path / "B" / "repo", tree("b"))
    (tmp_path / "current").symlink_to(tmp_path / "A")
    root = tmp_path / "current" / "repo"
    index(db, root, PLAIN)
    settle(db, root, PLAIN)
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to(tmp_path / "B")
    check(db, root, PLAIN)


# ---------------------------------------------------------------- ignore rules in .git (plain walk)
def test_plain_mode_git_info_exclude_edited(db, tmp_path):
    root = write_tree(tmp_path / "repo", {**tree("a"), "gen/out.py": "x = 1\n"})
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "info" / "exclude").write_text("gen/\n")
    index(db, root, PLAIN)
    settle(db, root, PLAIN)
    (root / ".git" / "info" / "exclude").write_text("")  # gen/ is no longer ignored
    check(db, root, PLAIN)


# ---------------------------------------------------------------- git index / exclude changes
def _git_repo(tmp_path, extra=None):
    root = write_tree(
        tmp_path / "repo", {**tree("a"), ".gitignore": "vendor/\n*.gen.py\n", **(extra or {})}
    )
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def test_git_add_force_of_an_ignored_file(db, tmp_path):
    root = _git_repo(tmp_path, {"pkg/table.gen.py": "T = [1, 2]\n"})
    index(db, root, GIT)
    settle(db, root, GIT)
    git(root, "add", "-f", "pkg/table.gen.py")  # now tracked: git lists it
    check(db, root, GIT)


def test_git_rm_cached_of_a_tracked_ignored_file(db, tmp_path):
    root = _git_repo(tmp_path, {"pkg/table.gen.py": "T = [1, 2]\n"})
    git(root, "add", "-f", "pkg/table.gen.py")
    git(root, "commit", "-qm", "force")
    index(db, root, GIT)
    settle(db, root, GIT)
    git(root, "rm", "-q", "--cached", "pkg/table.gen.py")  # untracked and ignored: no longer listed
    check(db, root, GIT)


def test_git_mode_info_exclude_edited(db, tmp_path):
    root = _git_repo(tmp_path)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("pkg/extra.py\n")
    (root / "pkg" / "extra.py").write_text("E = 1\n")  # untracked and excluded: not listed
    index(db, root, GIT)
    settle(db, root, GIT)
    (root / ".git" / "info" / "exclude").write_text("")  # git now lists pkg/extra.py
    check(db, root, GIT)


# ---------------------------------------------------------------- tracked file in an ignored dir
def test_tracked_file_in_ignored_dir_deleted_then_restored(db, tmp_path):
    root = _git_repo(tmp_path)
    write_tree(root, {"vendor/lib.py": "def lib():\n    return 1\n"})
    git(root, "add", "-f", "vendor/lib.py")
    git(root, "commit", "-qm", "vendored")
    index(db, root, GIT)
    settle(db, root, GIT)
    (root / "vendor" / "lib.py").unlink()
    assert tick(db, root, GIT).stale  # seen: watched parent of a listed file
    index(db, root, GIT)  # the run catches up with the deletion
    settle(db, root, GIT)  # vendor/ is now unwatched (ignored, no listed file exists in it)
    git(root, "checkout", "--", "vendor/lib.py")  # restored
    check(db, root, GIT)


# ---------------------------------------------------------------- symlinked .gitignore (git vs
# pathspec)
def test_symlinked_gitignore_git_does_not_follow(db, tmp_path):
    root = _git_repo(tmp_path)
    (root / ".gitignore").unlink()
    (tmp_path / "rules").write_text("gen/\n")
    (root / ".gitignore").symlink_to(
        tmp_path / "rules"
    )  # git >= 2.32 ignores it; pathspec follows it
    (root / "gen").mkdir()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "symlinked ignore")
    index(db, root, GIT)
    settle(db, root, GIT)
    (root / "gen" / "new.py").write_text("N = 1\n")  # git lists it (untracked, not ignored)
    check(db, root, GIT)


# ---------------------------------------------------------------- cached disk side vs a rehashed
# manifest
def test_spurious_stale_after_reconcile_rehash(db, tmp_path):
    """A same-size edit whose mtime is put back (cp -p, rsync -a, touch -r): both paths keep the
    old hash by the size+mtime fast path; the daily `rehash=True` run then records the true hash.
    The full scan now agrees with the index; the watched tick keeps the old version until the
    timer."""
    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.partitioning import shard_of

    root = write_tree(tmp_path / "repo", tree("a"))
    index(db, root, PLAIN)
    target = root / "pkg" / "mod_2.py"
    st = target.stat()
    target.write_text(target.read_text().replace("+ 2", "- 2"))  # same size
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    check(db, root, PLAIN)  # scanned (events), no change by either path
    settle(db, root, PLAIN)
    chunk_partition(db, "repo", str(root), shard_of("pkg/mod_2.py", 4), PLAIN, rehash=True)
    check(db, root, PLAIN)


@pytest.fixture
def plain(db, tmp_path):
    root = write_tree(
        tmp_path / "repo", {**tree("a"), "pkg/sub/deep.py": "D = 1\n", ".gitignore": "gen/\n"}
    )
    index(db, root, PLAIN)
    settle(db, root, PLAIN)
    return root


def test_dir_renamed_within_tree(db, plain):
    (plain / "pkg" / "sub").rename(plain / "moved")
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    (plain / "moved" / "deep.py").write_text("D = 2\n")  # the moved dir is watched again
    check(db, plain, PLAIN)


def test_dir_moved_in_from_outside_then_edited(db, plain, tmp_path):
    write_tree(tmp_path / "out", {"x/y.py": "Y = 1\n"})
    (tmp_path / "out" / "x").rename(plain / "x")
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    (plain / "x" / "y.py").write_text("Y = 2\n")
    check(db, plain, PLAIN)


def test_dir_moved_out_then_edited_outside(db, plain, tmp_path):
    (plain / "pkg" / "sub").rename(tmp_path / "gone")
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    (tmp_path / "gone" / "deep.py").write_text("D = 3\n")  # outside now: no change either way
    check(db, plain, PLAIN)


def test_dir_replaced_by_symlink_and_back(db, plain, tmp_path):
    shutil.rmtree(plain / "pkg" / "sub")
    write_tree(tmp_path / "elsewhere", {"deep.py": "D = 9\n"})
    (plain / "pkg" / "sub").symlink_to(tmp_path / "elsewhere")
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    (tmp_path / "elsewhere" / "deep.py").write_text("D = 10\n")  # not followed by either
    check(db, plain, PLAIN)
    (plain / "pkg" / "sub").unlink()
    write_tree(plain, {"pkg/sub/deep.py": "D = 11\n"})
    check(db, plain, PLAIN)


def test_root_deleted_and_recreated(db, plain):
    shutil.rmtree(plain)
    write_tree(plain, tree("b"))
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    (plain / "pkg" / "mod_2.py").write_text("Z = 1\n")
    check(db, plain, PLAIN)


def test_root_renamed_away_and_replaced(db, plain, tmp_path):
    plain.rename(tmp_path / "repo.old")
    write_tree(plain, tree("c"))
    check(db, plain, PLAIN)


def test_gitignore_unignores_dir_with_old_files(db, plain):
    write_tree(plain, {"gen/g.py": "G = 1\n"})
    settle(db, plain, PLAIN)
    (plain / "gen" / "g.py").write_text("G = 2\n")  # ignored, unwatched: no change either way
    check(db, plain, PLAIN)
    (plain / ".gitignore").write_text("")
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    (plain / "gen" / "g.py").write_text("G = 3\n")
    check(db, plain, PLAIN)


def test_codeindexignore_edit(db, plain):
    (plain / ".codeindexignore").write_text("pkg/sub/\n")
    check(db, plain, PLAIN)


def test_chmod_and_mtime_only(db, plain):
    os.chmod(plain / "pkg" / "mod_1.py", 0)
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    os.utime(plain / "pkg" / "mod_1.py", ns=(5, 5))
    check(db, plain, PLAIN)


def test_file_moved_in_with_preserved_mtime_and_atomic_save(db, plain, tmp_path):
    src = tmp_path / "o.py"
    src.write_text("O = 1\n")
    os.utime(src, ns=(1, 1))
    src.rename(plain / "pkg" / "o.py")
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    tmp = plain / "pkg" / ".mod_3.py.swp"
    tmp.write_text("def f3():\n    return 'saved'\n")
    tmp.rename(plain / "pkg" / "mod_3.py")
    check(db, plain, PLAIN)
    settle(db, plain, PLAIN)
    os.truncate(plain / "pkg" / "mod_4.py", 3)
    check(db, plain, PLAIN)


def test_event_during_the_scan(db, plain, monkeypatch):
    real = changes.scan_repository

    def scan_then_write(*a, **k):
        result = real(*a, **k)
        (plain / "pkg" / "mod_5.py").write_text(
            "during = 1\n"
        )  # after the listing, before covered()
        (plain / "pkg" / "newdir").mkdir(exist_ok=True)
        (plain / "pkg" / "newdir" / "n.py").write_text("N = 1\n")
        return result

    (plain / "pkg" / "mod_6.py").write_text("trigger = 1\n")
    monkeypatch.setattr(changes, "scan_repository", scan_then_write)
    tick(db, plain, PLAIN)
    monkeypatch.setattr(changes, "scan_repository", real)
    check(db, plain, PLAIN)


def test_two_settings_keys_on_one_root(db, plain):
    other = (
        IndexSettings(shards=SHARDS, use_git=False, max_file_bytes=1_000_000)
        if "max_file_bytes" in IndexSettings.__dataclass_fields__
        else IndexSettings(shards=SHARDS * 2, use_git=False)
    )
    settle(db, plain, other)
    (plain / "pkg" / "mod_0.py").write_text("K = 1\n")
    check(db, plain, other)
    check(db, plain, PLAIN)


def test_eviction(db, plain, tmp_path, monkeypatch):
    monkeypatch.setattr(changes, "MAX_WATCHED_TREES", 2)
    for i in range(3):
        r = write_tree(tmp_path / f"r{i}", tree(str(i), 2))
        tick(db, r, PLAIN)
    assert all(
        w.watched == 0 or w._fd is not None for w in (t.watch for t in changes._WATCHED.values())
    )
    (plain / "pkg" / "mod_0.py").write_text("E = 1\n")
    check(db, plain, PLAIN)


@pytest.fixture
def gitrepo(db, tmp_path):
    root = write_tree(tmp_path / "repo", {**tree("a"), ".gitignore": "build/\n"})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    git(root, "checkout", "-qb", "other")
    write_tree(root, {"newpkg/n.py": "N = 1\n", "pkg/mod_0.py": "changed = 0\n"})
    (root / "pkg" / "mod_1.py").unlink()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "other")
    git(root, "checkout", "-q", "main")
    index(db, root, GIT)
    settle(db, root, GIT)
    return root


def test_git_checkout_branch_and_back(db, gitrepo):
    git(gitrepo, "checkout", "-q", "other")
    check(db, gitrepo, GIT)
    settle(db, gitrepo, GIT)
    (gitrepo / "newpkg" / "n.py").write_text("N = 2\n")
    check(db, gitrepo, GIT)
    git(gitrepo, "checkout", "-q", "-f", "main")
    check(db, gitrepo, GIT)


def test_git_stash_and_pop(db, gitrepo):
    (gitrepo / "pkg" / "mod_2.py").write_text("S = 1\n")
    check(db, gitrepo, GIT)
    settle(db, gitrepo, GIT)
    git(gitrepo, "stash", "-q")
    check(db, gitrepo, GIT)
    settle(db, gitrepo, GIT)
    git(gitrepo, "stash", "pop", "-q")
    check(db, gitrepo, GIT)


def test_git_gitignore_unignores_build(db, gitrepo):
    write_tree(gitrepo, {"build/b.py": "B = 1\n"})
    settle(db, gitrepo, GIT)
    (gitrepo / ".gitignore").write_text("")
    check(db, gitrepo, GIT)
    settle(db, gitrepo, GIT)
    (gitrepo / "build" / "b.py").write_text("B = 2\n")
    check(db, gitrepo, GIT)
