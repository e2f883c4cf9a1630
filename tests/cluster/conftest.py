"""The cluster profile on loopback: Postgres, Redis, moto's S3, a CPU worker (queue `dagster`,
2 processes) and a GPU worker (queue `gpu`, 2 processes running the consumers on the CPU),
each worker with its own Dagster home. Started once per session, stopped at the end.

The reference, the same corpus through the local multiprocess profile, starts first and
runs while the services start: on 2 cores the session's wall is mostly process start-ups
and the model's CPU time, so nothing here starts twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.services import PROJECT, Services, missing_services

# Real code, small enough for 2 cores: one package of this project (7 files, ~90 chunks).
CORPUS_DIRS = ("indexer_core/storage",)
SHARDS = 8  # every profile here; some shards stay empty, which the consumers must handle


def _skip_without_services() -> None:
    missing = missing_services()
    if missing:
        pytest.skip(f"cluster services not installed: {', '.join(missing)}")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "corpus"
    for directory in CORPUS_DIRS:
        shutil.copytree(PROJECT / directory, root / directory, ignore=_pycache)
    return root


def _pycache(_dir, names):
    return [n for n in names if n == "__pycache__"]


@pytest.fixture(scope="session")
def local_run(tmp_path_factory, corpus):
    """`code-index index` through today's profile (multiprocess, SQLite home, local LanceDB),
    started now and awaited by `local_index`."""
    _skip_without_services()
    home = tmp_path_factory.mktemp("local-profile")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CODE_INDEX_", "DAGSTER_", "AWS_"))
    }
    env.update(
        CODE_INDEX_HOME=str(home),
        CODE_INDEX_SHARDS=str(SHARDS),
        PYTHONPATH=str(PROJECT),
        HF_HUB_OFFLINE="1",
    )
    cmd = [sys.executable, "-m", "orchestration.cli", "index", str(corpus), "--name", "corpus"]
    proc = subprocess.Popen(
        [*cmd, "-q"],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc, home
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, local_run):
    services = Services(tmp_path_factory.mktemp("cluster"))
    try:
        services.start()
        services.env["CODE_INDEX_SHARDS"] = str(SHARDS)
        services.cpu_worker, services.gpu_worker = services.workers(
            [("cpu", "dagster", 2, None), ("gpu", "gpu", 2, None)]
        )
        yield services
    finally:
        services.stop()
        shutil.rmtree(getattr(services, "_pg_data", ""), ignore_errors=True)


@pytest.fixture(scope="session")
def local_index(local_run) -> str:
    """The local profile's LanceDB directory, once its run has ended."""
    proc, home = local_run
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return str(home / "lancedb")
