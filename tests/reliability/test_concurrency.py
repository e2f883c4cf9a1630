"""Two writers of one partition at once, and writers of different partitions in parallel.

A sensor run and a backfill of the same partition are two processes running the same
chunk_partition/embed_partition; here they are started together on the same shard.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from tests.reliability.conftest import PROJECT, child_env
from tests.reliability.fakes import HashEmbedder
from tests.reliability.tables import assert_clean, snapshot

REPO = "crashy"


def _start(db_uri: str, root: Path, shards: int, first: int, last: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.worker",
            db_uri,
            str(root),
            REPO,
            str(shards),
            str(first),
            str(last),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
        env=child_env(),
    )


def _wait_all(children: list[subprocess.Popen]) -> None:
    errors = []
    for child in children:
        _, err = child.communicate(timeout=300)
        if child.returncode != 0:
            errors.append(err[-2000:])
    assert not errors, "a writer failed:\n" + "\n---\n".join(errors)


def _clean(tmp_path: Path, root: Path, shards: int) -> str:
    uri = str(tmp_path / "clean")
    settings = IndexSettings(shards=shards, use_git=False)
    for shard in range(shards):
        chunk_partition(uri, REPO, str(root), shard, settings)
        embed_partition(uri, REPO, shard, HashEmbedder())
    return uri


@pytest.mark.slow
def test_two_writers_of_the_same_partition_leave_clean_tables(
    tmp_path: Path, small_repo: Path
) -> None:
    db_uri = str(tmp_path / "db")
    for round_ in range(2):  # a first index, then an edit both writers see
        if round_:
            (small_repo / "pkg1/mod1.py").write_text("def replaced():\n    return 'new'\n")
            (small_repo / "web/w3.js").unlink()
        _wait_all([_start(db_uri, small_repo, 1, 0, 0) for _ in range(3)])
        assert_clean(db_uri)
    assert snapshot(db_uri) == snapshot(_clean(tmp_path, small_repo, 1))


@pytest.mark.slow
def test_writers_of_different_partitions_lose_nothing(tmp_path: Path, small_repo: Path) -> None:
    db_uri, shards = str(tmp_path / "db"), 4
    _wait_all([_start(db_uri, small_repo, shards, s, s) for s in range(shards)])
    assert_clean(db_uri)
    assert snapshot(db_uri) == snapshot(_clean(tmp_path, small_repo, shards))
