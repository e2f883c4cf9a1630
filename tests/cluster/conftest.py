"""The cluster profile on loopback: Postgres, Redis, moto's S3, a CPU worker (queue `dagster`,
2 processes) and a GPU worker (queue `gpu`, 2 processes running the consumers on the CPU),
each worker with its own Dagster home. Started once per session, stopped at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.services import PROJECT, Services, missing_services

# Real code, small enough for 2 cores: two packages of this project.
CORPUS_DIRS = ("indexer_core/chunking", "indexer_core/storage")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    missing = missing_services()
    if missing:
        pytest.skip(f"cluster services not installed: {', '.join(missing)}")
    services = Services(tmp_path_factory.mktemp("cluster"))
    try:
        services.start()
        services.cpu_worker = services.worker("cpu", "dagster", 2)
        services.gpu_worker = services.worker("gpu", "gpu", 2)
        yield services
    finally:
        services.stop()
        shutil.rmtree(getattr(services, "_pg_data", ""), ignore_errors=True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "corpus"
    for directory in CORPUS_DIRS:
        shutil.copytree(PROJECT / directory, root / directory, ignore=_pycache)
    return root


def _pycache(_dir, names):
    return [n for n in names if n == "__pycache__"]


@pytest.fixture(scope="session")
def local_index(tmp_path_factory, corpus) -> str:
    """The same corpus through today's profile: multiprocess, SQLite home, local LanceDB."""
    home = tmp_path_factory.mktemp("local-profile")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CODE_INDEX_", "DAGSTER_", "AWS_"))
    }
    env.update(CODE_INDEX_HOME=str(home), PYTHONPATH=str(PROJECT), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "index", str(corpus), "--name", "corpus"],
        env=env,
        cwd=PROJECT,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return str(home / "lancedb")
