"""Listing the files of a repository to index, with a recorded reason for every one left out.

In a git checkout git itself says which files exist and are not ignored, and its index
supplies blob ids for unmodified files. Elsewhere a directory walk applies `.gitignore`
files at every level (nested, with negation) through pathspec's git semantics. Our own
`.codeindexignore` applies on top in both cases. Nothing here reads file contents except
to hash a file whose size or mtime changed.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from indexer_core.discovery import skip_reasons
from indexer_core.discovery.hashing import StatRecord, blob_id
from indexer_core.records import FileEntry, SkippedFile

IGNORE_FILE = ".codeindexignore"
_MTIME_MARGIN_NS = 2_000_000_000

GENERATED_NAMES = frozenset(
    {
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "npm-shrinkwrap.json",
        "Cargo.lock",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "Gemfile.lock",
        "composer.lock",
        "go.sum",
        "flake.lock",
        "packages.lock.json",
        "bun.lockb",
    }
)
GENERATED_SUFFIXES = (".min.js", ".min.css", ".min.mjs", ".js.map", ".css.map", ".map", ".pyc")


@dataclass(frozen=True)
class DiscoveryConfig:
    """Limits and extra ignore patterns for discovery."""

    max_file_bytes: int = 2_000_000
    extra_ignores: tuple[str, ...] = ()
    use_git: bool = True


@dataclass
class Scan:
    """The files of one repository: those to index (hashed) and those left out (with reasons)."""

    root: str
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    used_git: bool = False
    hashed: int = 0  # how many files had to be read and hashed (the rest came from git or stat)
    directories: list[str] = field(
        default_factory=list
    )  # walked (not ignored) directories, "" = root


class RepositoryNotFound(FileNotFoundError):
    """The repository path does not exist or is not a directory."""


@dataclass
class Candidates:
    """What a scan selects from: every path git or the directory walk lists under a root
    (with git's blob id for a file unmodified at listing time), and what the walk itself left
    out. Listing is the scan's fixed cost: git runs four commands, a walk reads every
    directory. A chunk step lists once and selects each of its partitions from the same
    list, instead of listing the whole repository again per partition."""

    root: str
    paths: list[tuple[str, str | None]]
    used_git: bool
    listed_at_ns: int  # files changed since then are hashed, not given git's older blob id
    walk_skipped: list[SkippedFile] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    own_ignores: pathspec.GitIgnoreSpec | None = None  # `.codeindexignore`, read with the list


def list_candidates(
    root: str | os.PathLike[str], config: DiscoveryConfig = DiscoveryConfig()
) -> Candidates:
    """List `root` once (git where it is a checkout's top, else the ignore-aware walk)."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise RepositoryNotFound(
            f"repository path {str(root)!r} does not exist or is not a directory"
        )
    listed_at_ns = time.time_ns()
    own_ignores = _load_own_ignores(root_path, config)
    listing = _git_listing(root_path) if config.use_git else None
    if listing is not None:
        paths = list(listing.items())
        return Candidates(str(root_path), paths, True, listed_at_ns, own_ignores=own_ignores)
    skipped: list[SkippedFile] = []
    directories: list[str] = []
    paths = [(p, None) for p in _walk(root_path, skipped, directories)]
    return Candidates(str(root_path), paths, False, listed_at_ns, skipped, directories, own_ignores)


def listed_bytes(
    root: str | os.PathLike[str],
    config: DiscoveryConfig = DiscoveryConfig(),
    stop_above: int | None = None,
) -> int:
    """The bytes of the regular files listed under `root` (git's list or the ignore-aware
    walk, before a scan's own filters), counted in listing order and, with `stop_above`, only
    until the count passes it: whether a run is small, told without a stat of every file of
    a large tree. An over-estimate where the scan's filters would leave files out."""
    root_path = Path(root)
    listing = _git_listing(root_path) if config.use_git else None
    paths = iter(listing) if listing is not None else _walk(root_path, [])
    total = 0
    for rel in paths:
        try:
            info = os.lstat(root_path / rel)
        except OSError:
            continue  # gone since the listing: the run will say so
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
            if stop_above is not None and total > stop_above:
                break
    return total


def scan_repository(
    root: str | os.PathLike[str],
    config: DiscoveryConfig = DiscoveryConfig(),
    known: Mapping[str, StatRecord] | None = None,
    select: Callable[[str], bool] | None = None,
    candidates: Candidates | None = None,
) -> Scan:
    """List and hash the indexable files under `root`.

    `known` holds the previous run's (size, mtime, hash) by path: a file whose size and mtime
    are unchanged keeps its hash without being read. `select`, when given, keeps only the
    paths it accepts (a partition's files), before anything is stat'ed or hashed.
    `candidates`, a listing of the same root made earlier (`list_candidates`), saves listing
    it again; a file modified after that listing is hashed from its bytes, so an older
    listing never lends it a stale hash.
    """
    root_path = Path(root)
    if candidates is None or candidates.root != str(root_path):
        candidates = list_candidates(root_path, config)
    root_real = os.path.realpath(root_path)
    root_text = str(root_path)  # string joins: a Path per file costs more than its lstat
    scan = Scan(root=root_text, used_git=candidates.used_git)
    scan.skipped = list(candidates.walk_skipped)
    scan.directories = list(candidates.directories)
    own_ignores = candidates.own_ignores
    # A file whose mtime is this close to the listing (or later) may have changed after git
    # described it: its blob id is not trusted (mtimes can be coarse, hence the margin).
    trust_git_before = candidates.listed_at_ns - _MTIME_MARGIN_NS
    known = known or {}
    # Skips of selected candidates stay even when their recorded (printable) path would hash
    # to another shard; only the walk's own skips (ignored or unreadable dirs) are filtered.
    selected_skips: list[SkippedFile] = []
    files = scan.files
    for rel, git_hash in candidates.paths:
        if select is not None and not select(rel):
            continue
        if own_ignores is not None and own_ignores.match_file(rel):
            selected_skips.append(SkippedFile(rel, skip_reasons.IGNORED, IGNORE_FILE))
            continue
        st = _examine(root_text, root_real, rel, config)
        if isinstance(st, SkippedFile):
            selected_skips.append(st)
            continue
        size, mtime_ns = st.st_size, st.st_mtime_ns
        file_hash = git_hash if mtime_ns < trust_git_before else None
        if file_hash is None:
            record = known.get(rel)
            if record is not None and record.size == size and record.mtime_ns == mtime_ns:
                file_hash = record.file_hash  # size and mtime unchanged: the known hash holds
        if file_hash is None:
            try:
                file_hash = blob_id(_read_bytes(root_path / rel))
            except FileNotFoundError:
                selected_skips.append(
                    SkippedFile(rel, skip_reasons.VANISHED, "deleted while scanning")
                )
                continue
            except OSError as exc:
                selected_skips.append(
                    SkippedFile(rel, skip_reasons.UNREADABLE, exc.strerror or str(exc))
                )
                continue
            scan.hashed += 1
        files.append(FileEntry(rel, size, mtime_ns, file_hash))
    if select is not None:
        scan.skipped = [s for s in scan.skipped if select(s.path.rstrip("/"))]
    scan.skipped += selected_skips
    scan.files.sort(key=lambda f: f.path)
    scan.skipped.sort(key=lambda s: s.path)
    return scan


def _read_bytes(path: Path) -> bytes:
    # O_NONBLOCK: a FIFO swapped in after the stat must not hang the run.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def read_file_bytes(root: str | os.PathLike[str], rel: str) -> bytes:
    """Read one repository file without following a symlink swapped in since the scan."""
    return _read_bytes(Path(root) / rel)


def _examine(
    root: str, root_real: str, rel: str, config: DiscoveryConfig
) -> os.stat_result | SkippedFile:
    """Stat one candidate: symlinks, special files, size cap, generated names, readability.

    Returns the file's `lstat` when it is to be indexed. This runs once per file on every
    sensor tick, so it does one system call for an ordinary readable file.
    """
    if not _valid_utf8_name(rel):
        return SkippedFile(_printable(rel), skip_reasons.BAD_NAME, "file name is not valid UTF-8")
    full = f"{root}/{rel}"
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return SkippedFile(rel, skip_reasons.VANISHED, "deleted while scanning")
    except OSError as exc:
        return SkippedFile(rel, skip_reasons.UNREADABLE, exc.strerror or str(exc))
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        if stat.S_ISLNK(mode):
            return _classify_symlink(full, root_real, rel)
        if stat.S_ISDIR(mode):
            return SkippedFile(rel, skip_reasons.NOT_REGULAR, "a directory where git lists a file")
        return SkippedFile(
            rel, skip_reasons.NOT_REGULAR, "not a regular file (FIFO, socket or device)"
        )
    if st.st_size > config.max_file_bytes:
        return SkippedFile(
            rel, skip_reasons.TOO_LARGE, f"{st.st_size} bytes > limit {config.max_file_bytes}"
        )
    name = rel.rpartition("/")[2]
    if name in GENERATED_NAMES or name.endswith(GENERATED_SUFFIXES):
        return SkippedFile(
            rel, skip_reasons.GENERATED, "lock file or minified/compiled artefact by name"
        )
    # Readable by anyone (the usual 0644) needs no second system call; otherwise ask the kernel.
    if not mode & stat.S_IROTH and not os.access(full, os.R_OK):
        return SkippedFile(rel, skip_reasons.UNREADABLE, "permission denied")
    return st


def _classify_symlink(full: str, root_real: str, rel: str) -> SkippedFile:
    """Symlinks are never followed: each gets the reason why."""
    try:
        target = os.path.realpath(full, strict=True)
    except RuntimeError:
        return SkippedFile(rel, skip_reasons.SYMLINK_LOOP, "symlink loop")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return SkippedFile(rel, skip_reasons.SYMLINK_LOOP, "symlink loop")
        return SkippedFile(rel, skip_reasons.SYMLINK_OUTSIDE, f"dangling symlink: {exc.strerror}")
    if target != root_real and not target.startswith(root_real + os.sep):
        return SkippedFile(rel, skip_reasons.SYMLINK_OUTSIDE, "points outside the repository")
    return SkippedFile(
        rel, skip_reasons.SYMLINK, "points inside the repository; target indexed at its own path"
    )


def _valid_utf8_name(rel: str) -> bool:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(rel: str) -> str:
    return rel.encode("utf-8", "backslashreplace").decode("utf-8")


def _load_own_ignores(root: Path, config: DiscoveryConfig) -> pathspec.GitIgnoreSpec | None:
    lines = list(config.extra_ignores)
    own = root / IGNORE_FILE
    if own.is_file():
        lines += own.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def _git_listing(root: Path) -> dict[str, str | None] | None:
    """Paths git shows (tracked plus untracked-not-ignored), with blob ids of unmodified ones.

    None when `root` is not the top of a git work tree or git is missing.
    """
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"],
            capture_output=True,
            check=True,
        ).stdout.strip()
        if os.path.realpath(os.fsdecode(top)) != os.path.realpath(root):
            return None
        staged = _git_z(root, "ls-files", "-z", "--stage")
        untracked = _git_z(root, "ls-files", "-z", "--others", "--exclude-standard")
        modified = set(_git_z(root, "diff-files", "-z", "--name-only", "--no-renames"))
    except (OSError, subprocess.CalledProcessError):
        return None
    listing: dict[str, str | None] = {}
    for record in staged:
        meta, _, path = record.partition("\t")
        mode, blob, stage_no = meta.split(" ")
        if mode == "160000":
            listing[path] = None  # submodule: _examine sees a directory and records it
            continue
        if stage_no != "0" and path in listing:
            continue  # merge conflict: several stages, the work tree decides
        listing[path] = None if (path in modified or stage_no != "0" or mode == "120000") else blob
    for path in untracked:
        listing.setdefault(path, None)
    return listing


def scan_state_files(root: str | os.PathLike[str], use_git: bool = True) -> list[str]:
    """Files outside the listed tree that decide what a scan lists, for a watcher to compare.

    The walk reads `.git/info/exclude`. In a checkout git also reads its index (what is
    tracked, ignored or not) and the global excludes file; their paths come from git itself,
    so worktrees and `core.excludesFile` are followed.
    """
    root_text = os.fspath(root)
    paths = [os.path.join(root_text, ".git", "info", "exclude")]
    if not use_git or not os.path.exists(os.path.join(root_text, ".git")):
        return paths
    try:
        listed = subprocess.run(
            [
                "git",
                "-C",
                root_text,
                "rev-parse",
                "--git-path",
                "index",
                "--git-path",
                "info/exclude",
            ],
            capture_output=True,
            check=True,
        ).stdout
        configured = subprocess.run(
            ["git", "-C", root_text, "config", "--path", "--get", "core.excludesFile"],
            capture_output=True,
            check=False,  # exit status 1: not set, git's default applies
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return paths
    paths = [os.path.join(root_text, os.fsdecode(p)) for p in listed.splitlines() if p]
    if configured:
        paths.append(os.fsdecode(configured))
    else:
        config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
            os.path.expanduser("~"), ".config"
        )
        paths.append(os.path.join(config_home, "git", "ignore"))
    return paths


def _git_z(root: Path, *args: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=True).stdout
    return [os.fsdecode(p) for p in out.split(b"\0") if p]


def walk_directories(root: str | os.PathLike[str]) -> list[str]:
    """Every directory under `root` that no .gitignore excludes ("" is the root itself).

    What a watcher must watch in a git checkout: git lists files, so a new directory that
    holds none yet would otherwise go unwatched, and a file made in it later unseen."""
    directories: list[str] = []
    for _ in _walk(Path(root), [], directories, files=False):
        pass
    return directories


def _walk(
    root: Path, skipped: list[SkippedFile], directories: list[str] | None = None, files: bool = True
) -> Iterator[str]:
    """Files under root not ignored by any .gitignore (or .git/info/exclude), depth first.

    Each directory listed is appended to `directories`, for a watcher to watch; with `files`
    False only directories are looked at."""
    stack: list[tuple[str, list[tuple[str, pathspec.GitIgnoreSpec]]]] = []
    base_specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    exclude = root / ".git" / "info" / "exclude"
    if exclude.is_file():
        base_specs.append(
            (
                "",
                pathspec.GitIgnoreSpec.from_lines(exclude.read_text(errors="replace").splitlines()),
            )
        )
    stack.append(("", base_specs))
    root_text = str(root)
    while stack:
        rel_dir, specs = stack.pop()
        dir_path = f"{root_text}/{rel_dir}" if rel_dir else root_text
        try:
            with os.scandir(dir_path) as listing:
                entries = list(listing)  # unsorted: the scan sorts its results once at the end
        except OSError as exc:
            skipped.append(
                SkippedFile(rel_dir or ".", skip_reasons.UNREADABLE, exc.strerror or str(exc))
            )
            continue
        if directories is not None:
            directories.append(rel_dir)
        # The listing says whether a .gitignore is here: no extra stat per directory.
        # A symlinked .gitignore is not read, as git (>= 2.32) does not read one.
        if any(e.name == ".gitignore" and e.is_file(follow_symlinks=False) for e in entries):
            specs = _with_gitignore(dir_path, rel_dir, specs, skipped)
        subdirs = []
        for entry in entries:
            name = entry.name
            if name == ".git":
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if not (is_dir or files):
                continue
            if specs and _ignored(specs, rel, is_dir):
                skipped.append(
                    SkippedFile(rel + ("/" if is_dir else ""), skip_reasons.IGNORED, ".gitignore")
                )
                continue
            if is_dir:
                subdirs.append((rel, specs))
            else:
                yield rel
        stack.extend(reversed(subdirs))


def _with_gitignore(
    dir_path: str,
    rel_dir: str,
    specs: list[tuple[str, pathspec.GitIgnoreSpec]],
    skipped: list[SkippedFile],
) -> list[tuple[str, pathspec.GitIgnoreSpec]]:
    """The ignore rules in force below `rel_dir`: the parents' plus this directory's .gitignore."""
    gitignore = f"{dir_path}/.gitignore"
    if not os.path.isfile(gitignore):
        return specs
    try:
        with open(gitignore, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        skipped.append(SkippedFile(_join(rel_dir, ".gitignore"), skip_reasons.UNREADABLE, str(exc)))
        return specs
    return [*specs, (rel_dir, pathspec.GitIgnoreSpec.from_lines(lines))]


def _ignored(specs: list[tuple[str, pathspec.GitIgnoreSpec]], rel: str, is_dir: bool) -> bool:
    """Git's rule: the deepest .gitignore with a matching pattern decides, last pattern wins."""
    for base, spec in reversed(specs):
        sub = rel[len(base) + 1 :] if base else rel
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is not None:
            return bool(result.include)
    return False


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name
