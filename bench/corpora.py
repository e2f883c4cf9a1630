"""The corpora of ../shared/corpora.md: where each lives, installing or unpacking it if needed.

A corpus resolves to a directory plus extra ignore patterns. `materialize` copies a
deterministic slice of it (by a stable hash of each path, up to a byte budget) into a work
directory, which is what the end-to-end runs index: a copy needs no ignore configuration
and never writes into system directories.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sysconfig
import tarfile
from dataclasses import dataclass
from pathlib import Path

from indexer_core.discovery.listing import DiscoveryConfig, scan_repository
from indexer_core.records import FileEntry

CACHE = Path(os.environ.get("BENCH_CORPUS_CACHE", "/tmp/bench-corpora"))
LINUX_SLICE = (
    "kernel",
    "mm",
    "fs/ext4",
    "lib",
    "include/linux",
    "net/ipv4",
    "scripts",
    "rust",
    "tools/perf/util",
)


@dataclass(frozen=True)
class Corpus:
    name: str
    root: Path
    ignores: tuple[str, ...] = ()

    def files(self, max_file_bytes: int = 2_000_000) -> list[FileEntry]:
        config = DiscoveryConfig(
            max_file_bytes=max_file_bytes, extra_ignores=self.ignores, use_git=False
        )
        return scan_repository(self.root, config).files


def resolve(name: str) -> Corpus:
    """The corpus called `name`, installed or unpacked first where needed."""
    makers = {
        "cpython": _cpython,
        "go": _go,
        "linux": _linux,
        "typescript": _typescript,
        "site-packages": _site_packages,
    }
    if name in makers:
        return makers[name]()
    path = Path(name).expanduser()
    if path.is_dir():  # any directory is a corpus too
        return Corpus(path.name, path.resolve(), ("__pycache__/", ".git/"))
    raise SystemExit(f"unknown corpus {name!r}: one of {', '.join(makers)} or a directory")


def _cpython() -> Corpus:
    root = Path(sysconfig.get_paths()["stdlib"])
    return Corpus("cpython", root, ("site-packages/", "dist-packages/", "__pycache__/", "*.pyc"))


def _site_packages() -> Corpus:
    root = Path(sysconfig.get_paths()["purelib"])
    return Corpus(
        "site-packages", root, ("__pycache__/", "*.pyc", "*.so", "*.so.*", "*.a", "*.dist-info/")
    )


def _go() -> Corpus:
    root = Path("/usr/share/go-1.19/src")
    if not root.is_dir():
        _apt("golang-1.19-src")
    return Corpus("go", root)


def _linux() -> Corpus:
    root = CACHE / "linux-6.1"
    if not root.is_dir():
        archives = glob.glob("/usr/src/linux-source-6.1*.tar.xz")
        if not archives:
            _apt("linux-source-6.1")
            archives = glob.glob("/usr/src/linux-source-6.1*.tar.xz")
        _unpack_linux(Path(archives[0]), root)
    return Corpus("linux", root)


def _unpack_linux(archive: Path, root: Path) -> None:
    """Unpack a slice (core kernel directories) of the source tree; the full tree is ~1.2 GB."""
    tmp = root.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/", 1)
            if len(parts) < 2 or not member.isfile():
                continue
            if any(parts[1] == d or parts[1].startswith(d + "/") for d in LINUX_SLICE):
                member.name = parts[1]
                tar.extract(member, tmp, filter="data")
    tmp.rename(root)


def _typescript() -> Corpus:
    root = CACHE / "typescript"
    if not root.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = CACHE / "typescript.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        out = (
            subprocess.run(
                ["npm", "pack", "typescript", "--silent"],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        with tarfile.open(tmp / out) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / "package").rename(root)
        shutil.rmtree(tmp)
    # The compiler's own files are several MB each: raise the size cap for this corpus.
    return Corpus("typescript", root)


def _apt(package: str) -> None:
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True)


def stable_order(files: list[FileEntry]) -> list[FileEntry]:
    """Files in an order fixed by a hash of their paths: any prefix is a fair sample."""
    return sorted(
        files,
        key=lambda f: hashlib.blake2b(
            f.path.encode("utf-8", "surrogatepass"), digest_size=8
        ).digest(),
    )


def take(
    files: list[FileEntry], max_bytes: int | None = None, fraction: float = 1.0
) -> list[FileEntry]:
    """A deterministic sample: the first `fraction` of the bytes (capped at `max_bytes`)."""
    ordered = stable_order(files)
    total = sum(f.size for f in ordered)
    budget = total * fraction
    if max_bytes is not None:
        budget = min(budget, max_bytes)
    out: list[FileEntry] = []
    used = 0
    for entry in ordered:
        if used >= budget:
            break
        out.append(entry)
        used += entry.size
    return out


def materialize(corpus: Corpus, files: list[FileEntry], dest: Path) -> Path:
    """Copy `files` of `corpus` under `dest` (replaced), keeping relative paths."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for entry in files:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus.root / entry.path, target)
    return dest
