"""Discovery on real directories and real git checkouts: ignore rules, skip reasons, odd names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexer_core.discovery import skip_reasons
from indexer_core.discovery.hashing import StatRecord, blob_id
from indexer_core.discovery.listing import (
    DiscoveryConfig,
    RepositoryNotFound,
    list_candidates,
    listed_bytes,
    scan_repository,
)
from tests.conftest import git, write_tree

ODD_NAMES = [
    "it's here.py",
    'say "hi".py',
    "with space.py",
    "new\nline.py",
    "ünïcødé_名前.py",
    "-leading-dash.py",
    "back\\slash.py",
]


def _paths(scan) -> set[str]:
    return {f.path for f in scan.files}


def _reasons(scan) -> dict[str, str]:
    return {s.path: s.reason for s in scan.skipped}


def _backdate(root: Path, *paths: str, seconds: int = 3600) -> None:
    for rel in paths:
        stat = (root / rel).stat()
        os.utime(root / rel, ns=(stat.st_atime_ns, stat.st_mtime_ns - seconds * 10**9))


def test_nested_gitignore_with_negation_outside_git(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            ".gitignore": "*.log\nbuild/\n",
            "a.py": "x = 1\n",
            "debug.log": "noise\n",
            "build/out.py": "y = 2\n",
            "sub/.gitignore": "!keep.log\nlocal.py\n",
            "sub/keep.log": "kept\n",
            "sub/local.py": "z = 3\n",
            "sub/other.py": "w = 4\n",
            ".codeindexignore": "sub/other.py\n",
        },
    )
    scan = scan_repository(root, DiscoveryConfig(use_git=False))
    assert _paths(scan) == {
        ".gitignore",
        ".codeindexignore",
        "a.py",
        "sub/.gitignore",
        "sub/keep.log",
    }
    reasons = _reasons(scan)
    assert reasons["debug.log"] == skip_reasons.IGNORED
    assert reasons["build/"] == skip_reasons.IGNORED
    assert reasons["sub/local.py"] == skip_reasons.IGNORED
    assert reasons["sub/other.py"] == skip_reasons.IGNORED


def test_git_checkout_uses_git_listing_and_blob_ids(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {".gitignore": "ignored/\n", "a.py": "a = 1\n", "b.py": "b = 1\n", "ignored/x.py": "x\n"},
    )
    git(root, "init", "-q")
    (root / ".git" / "info" / "exclude").write_text("secret.py\n")
    (root / "secret.py").write_text("s = 1\n")
    _backdate(root, "a.py", "b.py", ".gitignore")  # not touched just before the listing
    git(root, "add", "a.py", "b.py", ".gitignore")
    git(root, "commit", "-qm", "init")
    (root / "b.py").write_text("b = 2\n")  # modified in the work tree
    (root / "new.py").write_text("n = 1\n")  # untracked
    scan = scan_repository(root)
    assert scan.used_git
    assert _paths(scan) == {".gitignore", "a.py", "b.py", "new.py"}
    hashes = {f.path: f.file_hash for f in scan.files}
    for rel in ("a.py", "b.py", "new.py"):
        expected = subprocess.run(
            ["git", "-C", str(root), "hash-object", rel], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert hashes[rel] == expected
    assert scan.hashed == 2  # only the modified and the untracked file were read


def test_stat_fast_path_skips_hashing_unchanged_files(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"a.py": "a = 1\n", "b.py": "b = 1\n"})
    first = scan_repository(root, DiscoveryConfig(use_git=False))
    known = {f.path: StatRecord(f.size, f.mtime_ns, f.file_hash) for f in first.files}
    (root / "b.py").write_text("b = 22\n")
    second = scan_repository(root, DiscoveryConfig(use_git=False), known=known)
    assert second.hashed == 1
    assert {f.path: f.file_hash for f in second.files}["b.py"] == blob_id(b"b = 22\n")


def test_skip_reasons_by_name_size_and_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("secret = 1\n")
    root = write_tree(
        tmp_path / "repo",
        {
            "package-lock.json": "{}",
            "dist/app.min.js": "var a=1;",
            "big.py": "x = 1\n" * 1000,
            "ok.py": "ok = 1\n",
        },
    )
    os.symlink(outside, root / "escape.py")
    os.symlink(root / "ok.py", root / "alias.py")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root / "loop_b", root / "loop_a")
    os.mkfifo(root / "pipe.py")
    scan = scan_repository(root, DiscoveryConfig(max_file_bytes=5000, use_git=False))
    reasons = _reasons(scan)
    assert reasons["package-lock.json"] == skip_reasons.GENERATED
    assert reasons["dist/app.min.js"] == skip_reasons.GENERATED
    assert reasons["big.py"] == skip_reasons.TOO_LARGE
    assert reasons["escape.py"] == skip_reasons.SYMLINK_OUTSIDE
    assert reasons["alias.py"] == skip_reasons.SYMLINK
    assert reasons["loop_a"] == skip_reasons.SYMLINK_LOOP
    assert reasons["loop_b"] == skip_reasons.SYMLINK_LOOP
    assert reasons["pipe.py"] == skip_reasons.NOT_REGULAR
    assert _paths(scan) == {"ok.py"}


def test_odd_file_names_are_listed_like_any_other(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {name: "v = 1\n" for name in ODD_NAMES})
    assert _paths(scan_repository(root, DiscoveryConfig(use_git=False))) == set(ODD_NAMES)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "odd")
    assert _paths(scan_repository(root)) == set(ODD_NAMES)


def test_non_utf8_file_name_is_skipped_with_reason(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "fine.py").write_text("a = 1\n")
    with open(os.path.join(os.fsencode(root), b"bad\xff.py"), "wb") as handle:
        handle.write(b"b = 1\n")
    scan = scan_repository(root, DiscoveryConfig(use_git=False))
    assert _paths(scan) == {"fine.py"}
    assert [s.reason for s in scan.skipped] == [skip_reasons.BAD_NAME]


def test_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound, match="does-not-exist"):
        scan_repository(tmp_path / "does-not-exist")


@pytest.mark.skipif(
    not hasattr(os, "setuid") or os.geteuid() != 0,
    reason="needs root to drop to an unprivileged user",
)
def test_unreadable_file_is_recorded_not_fatal(tmp_path: Path) -> None:
    """As root every file is readable, so the scan runs as `nobody` against a chmod 000 file."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="unreadable-"))  # pytest's tmp_path is private to root
    root = write_tree(base / "repo", {"open.py": "a = 1\n", "locked.py": "b = 1\n"})
    os.chmod(root / "locked.py", 0)
    for path in (base, root):
        os.chmod(path, 0o755)
    code = (
        "import os, sys; from indexer_core.discovery.listing import scan_repository, "
        "DiscoveryConfig;"
        "os.setgid(65534); os.setuid(65534);"
        f"s = scan_repository({str(root)!r}, DiscoveryConfig(use_git=False));"
        "print(sorted(f.path for f in s.files), sorted((x.path, x.reason) for x in s.skipped))"
    )
    project = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
        env={**os.environ, "PYTHONPATH": str(project)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['open.py'] [('locked.py', 'unreadable')]"


def _shard_scans(root: Path, config: DiscoveryConfig, candidates=None) -> list[tuple]:
    """Every shard's scan as plain data (what a chunk step records per partition)."""
    out = []
    for shard in range(4):
        scan = scan_repository(
            root, config, select=lambda p, s=shard: hash(p) % 4 == s, candidates=candidates
        )
        out.append(
            (
                [(f.path, f.size, f.file_hash) for f in scan.files],
                [(k.path, k.reason) for k in scan.skipped],
                scan.used_git,
            )
        )
    return out


@pytest.mark.parametrize("use_git", [True, False])
def test_one_listing_serves_every_partition_alike(tmp_path: Path, use_git: bool) -> None:
    """A chunk step lists the repository once and selects each partition from that listing:
    every partition's files, hashes and skips are what a listing of its own would give."""
    root = write_tree(
        tmp_path,
        {
            ".gitignore": "build/\n*.log\n",
            **{f"pkg/m{i}.py": f"x = {i}\n" for i in range(12)},
            "build/out.py": "y\n",
            "debug.log": "noise\n",
            "package-lock.json": "{}\n",
            ".codeindexignore": "pkg/m3.py\n",
        },
    )
    if use_git:
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "init")
        (root / "pkg" / "m1.py").write_text("x = 'changed'\n")
        (root / "untracked.py").write_text("u = 1\n")
    config = DiscoveryConfig(use_git=use_git)
    listing = list_candidates(root, config)
    assert listing.used_git is use_git
    assert _shard_scans(root, config, listing) == _shard_scans(root, config)


def test_a_file_changed_after_the_listing_is_hashed_from_its_bytes(tmp_path: Path) -> None:
    """git's blob id describes a file as it was when listed; a partition scanned later must
    not record that id for bytes changed since (its chunks are made from the new bytes)."""
    root = write_tree(tmp_path, {"a.py": "a = 1\n", "b.py": "b = 1\n"})
    _backdate(root, "a.py", "b.py")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    listing = list_candidates(root)
    (root / "a.py").write_text("a = 2  # edited while the step ran\n")
    scan = scan_repository(root, candidates=listing)
    hashes = {f.path: f.file_hash for f in scan.files}
    assert hashes["a.py"] == blob_id((root / "a.py").read_bytes())
    assert hashes["b.py"] == blob_id(b"b = 1\n")
    assert scan.hashed == 1  # b.py kept git's id: unchanged since long before the listing


@pytest.mark.parametrize("use_git", [True, False])
def test_listed_bytes_counts_listed_files_and_stops_early(tmp_path, use_git) -> None:
    files = {
        "a.py": b"x" * 1000,
        "src/b.py": b"y" * 3000,
        "build/out.py": b"z" * 50_000,
        ".gitignore": b"build/\n",
    }
    root = write_tree(tmp_path / "repo", files)
    os.symlink(root / "a.py", root / "link.py")  # not a regular file: not counted
    if use_git:
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "init")
    config = DiscoveryConfig(use_git=use_git)
    ignored_left_out = 1000 + 3000 + len(b"build/\n")
    assert listed_bytes(root, config) == ignored_left_out
    assert listed_bytes(root, config, stop_above=10_000) == ignored_left_out
    # Counting stops at the first file that passes the bound: over it, never all of it.
    early = listed_bytes(root, config, stop_above=500)
    assert 500 < early < ignored_left_out
