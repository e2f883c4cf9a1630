"""Shared fixtures: real LanceDB directories, a real Dagster home, the real packaged model."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Query-encoder exports (`query_encoder.py`) go to a directory of this session, not to the
    user's cache, and are removed at the end (about 90 MB per model)."""
    import shutil

    path = tmp_path_factory.mktemp("cache-home")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)  # the platform's variable, which the core honours
    yield path / "code-index" / "onnx"
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
    shutil.rmtree(path, ignore_errors=True)


# SIGTERM as this session started with it, read when pytest loads this file.
_SESSION_SIGTERM = signal.getsignal(signal.SIGTERM)


@pytest.fixture(autouse=True)
def sigterm_as_the_session_found_it():
    """Put SIGTERM back before and after each test. Dagster's `capture_interrupts` (around a
    job run in this process's main thread, as `execute_in_process` does) gives SIGTERM the
    SIGINT handler and then restores both to SIGINT's original one. Where the suite was
    started with SIGINT ignored (a shell's background job), SIGTERM stays ignored, so every
    process the later tests start inherits that. Dagster's compute-log `tail -F` processes
    then outlive their `terminate()`: each costs a 30 s wait, and an orphaned one holds a
    test's pipe. Before the test as well as after it: a module-scoped fixture that runs a job
    (`tests/cluster/test_visibility.py`) does so before this fixture starts, and after this
    fixture of the module's last test ends."""
    _put_back_sigterm()
    yield
    _put_back_sigterm()


def _put_back_sigterm() -> None:
    if signal.getsignal(signal.SIGTERM) != _SESSION_SIGTERM:
        signal.signal(signal.SIGTERM, _SESSION_SIGTERM)


SAMPLE_FILES = {
    "src/app.py": '''"""A tiny application."""
import os


class Greeter:
    """Says hello."""

    def __init__(self, name):
        self.name = name

    def greet(self):
        return f"hello {self.name}"


def parse_header(line):
    key, _, value = line.partition(":")
    return key.strip(), value.strip()
''',
    "src/util.js": """export function add(a, b) {
  return a + b;
}

export class HttpClient {
  send(request) {
    return fetch(request.url);
  }
}
""",
    "lib/main.go": """package main

import "fmt"

func main() {
\tfmt.Println("hi")
}
""",
    "docs/guide.md": "# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n",
    "notes.txt": "plain text notes\nsecond line\n",
}


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "repo", SAMPLE_FILES)


@pytest.fixture
def db_uri(tmp_path: Path) -> str:
    return str(tmp_path / "lancedb")


@pytest.fixture(scope="session")
def embedder():
    from indexer_core.embedding.model import load_embedder

    return load_embedder(MODEL, "cpu", 32)


@pytest.fixture(scope="session")
def counter():
    from indexer_core.chunking.tokens import load_token_counter

    return load_token_counter(MODEL)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, env=env, text=True
    ).stdout


def versions_from_scratch(root: Path, settings, db_uri: str | None = None) -> dict[int, str]:
    """Each shard's data version derived the slow way, as an oracle for the change detection:
    one scan, every shard hashed, no manifest summary or watch involved. With `db_uri`, the
    scan trusts the manifest's size+mtime fast path as the pipeline does; without, nothing."""
    from indexer_core.discovery.hashing import StatRecord
    from indexer_core.discovery.listing import scan_repository
    from indexer_core.indexing.manifest import read_manifest
    from indexer_core.indexing.partitioning import data_version, shard_of
    from indexer_core.indexing.settings import chunker_fingerprint

    known = {}
    manifest = read_manifest(db_uri, "repo") if db_uri else None
    if manifest is not None:
        columns = (
            manifest.column(c).to_pylist() for c in ("path", "size", "mtime_ns", "file_hash")
        )
        known = {p: StatRecord(s, m, h) for p, s, m, h in zip(*columns) if h}
    scan = scan_repository(str(root), settings.discovery(), known=known)
    fingerprint = chunker_fingerprint(settings.model)
    by_shard: dict[int, list[tuple[str, str]]] = {s: [] for s in range(settings.shards)}
    for entry in scan.files:
        by_shard[shard_of(entry.path, settings.shards)].append((entry.path, entry.file_hash))
    return {s: data_version(files, fingerprint) for s, files in by_shard.items()}
