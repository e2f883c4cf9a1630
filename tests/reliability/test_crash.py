"""SIGKILL at random points (chunking, embedding, a LanceDB write); the rerun must converge.

After each kill the same partitions are indexed again in this process, and the tables must
equal those of a clean run over the same tree, with every invariant intact.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from tests.reliability.conftest import PROJECT, child_env
from tests.reliability.fakes import HashEmbedder
from tests.reliability.tables import assert_clean, chunk_set, snapshot

SHARDS = 3
REPO = "crashy"


def index_in_process(db_uri: str, root: Path) -> None:
    settings = IndexSettings(shards=SHARDS, use_git=False)
    for shard in range(SHARDS):
        chunk_partition(db_uri, REPO, str(root), shard, settings)
        embed_partition(db_uri, REPO, shard, HashEmbedder())


def kill_during(db_uri: str, root: Path, phase: str, nth: int, delay: float) -> str:
    """Start a worker, SIGKILL it `delay` s after its `nth` announcement of `phase`.

    Returns what happened: "killed" or "finished" (the work ended before the aim).
    """
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.reliability.worker",
            db_uri,
            str(root),
            REPO,
            str(SHARDS),
            "0",
            str(SHARDS - 1),
            "0.02",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=PROJECT,
        env=child_env(),
    )
    seen = 0
    for line in child.stdout:
        if line.strip() == phase:
            seen += 1
            if seen == nth:
                time.sleep(delay)
                child.send_signal(signal.SIGKILL)
                break
    child.wait(timeout=120)
    return "killed" if child.returncode == -signal.SIGKILL else "finished"


def _edit(root: Path, rng: random.Random, step: int) -> None:
    """A small incremental change, so later kills land in runs that replace and delete rows."""
    files = sorted(p for p in root.rglob("*.py"))
    victim = rng.choice(files)
    victim.write_text(victim.read_text() + f"\n\ndef added_{step}(x):\n    return x + {step}\n")
    gone = rng.choice([p for p in files if p != victim])
    gone.unlink()
    (root / f"pkg0/new_{step}.py").write_text(f"def new_{step}():\n    return {step}\n")


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_equals_clean_run(
    tmp_path: Path, small_repo: Path
) -> None:
    rng = random.Random(7)
    db_uri = str(tmp_path / "db")
    # (phase, nth announcement, start from an empty index?): first runs and incremental ones.
    aims = [
        ("chunk", 1, True),
        ("embed", 2, False),
        ("write", 1, False),
        ("write", 3, True),
        ("write", 2, False),
        ("chunk", 2, False),
        ("write", 6, True),
    ]
    outcomes = []
    for step, (phase, nth, fresh) in enumerate(aims):
        if fresh:
            shutil.rmtree(db_uri, ignore_errors=True)
        else:
            _edit(small_repo, rng, step)
        delay = rng.uniform(0.0, 0.08 if phase == "write" else 0.4)
        outcomes.append(kill_during(db_uri, small_repo, phase, nth, delay))
        index_in_process(db_uri, small_repo)
        assert_clean(db_uri)
        clean_uri = str(tmp_path / f"clean{step}")
        index_in_process(clean_uri, small_repo)
        assert snapshot(db_uri) == snapshot(clean_uri), f"step {step}: killed at {phase} #{nth}"
    assert outcomes.count("killed") >= 6, outcomes


_DAGSTER_RUN = (
    "import json, sys\n"
    "from orchestration.runner import index_repository\n"
    "o = index_repository(sys.argv[1], db_uri=sys.argv[2], name='crashy')\n"
    "print(json.dumps({'success': o.success, 'failures': o.failures}))\n"
)


def _dagster_child(root: Path, db_uri: str) -> subprocess.Popen:
    """A Dagster run (multiprocess executor, real model) in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-c", _DAGSTER_RUN, str(root), db_uri],
        cwd=PROJECT,
        env=child_env(CODE_INDEX_SHARDS="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.slow
def test_sigkill_of_a_dagster_run_then_rerun_converges(
    tmp_path: Path, small_repo: Path, dagster_home
) -> None:
    """Kill the whole run (runner and step processes) once chunks start landing; rerun it."""
    from indexer_core.storage import tables as storage

    db_uri, rng = str(tmp_path / "db"), random.Random(11)
    child = _dagster_child(small_repo, db_uri)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        names = storage.table_names(storage.connect(db_uri)) if Path(db_uri).exists() else set()
        if (
            storage.CHUNKS in names
            and storage.connect(db_uri).open_table(storage.CHUNKS).count_rows()
        ):
            break
        time.sleep(0.2)
    time.sleep(rng.uniform(0.0, 3.0))
    killed = child.poll() is None
    if killed:
        os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)

    rerun = _dagster_child(small_repo, db_uri)
    out, err = rerun.communicate(timeout=400)
    assert rerun.returncode == 0 and '"success": true' in out, err[-3000:]
    assert_clean(db_uri)
    clean_uri = str(tmp_path / "clean")
    for shard in range(2):
        chunk_partition(
            clean_uri, "crashy", str(small_repo), shard, IndexSettings(shards=2, use_git=False)
        )
    assert chunk_set(db_uri) == chunk_set(clean_uri)
    assert killed, "the run finished before the kill: nothing was tested"
