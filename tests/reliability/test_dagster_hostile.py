"""A smaller hostile corpus through the real Dagster job (multiprocess executor, real model)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from indexer_core.discovery import skip_reasons
from tests.orchestration.helpers import materializations, metadata_of
from tests.reliability.conftest import PROJECT, child_env
from tests.reliability.corpus import INDEXED, build_corpus
from tests.reliability.tables import assert_clean

SHARDS = "2"
_RUN = (
    "import json, sys\n"
    "from orchestration.runner import index_repository\n"
    "o = index_repository(sys.argv[1], db_uri=sys.argv[2], name='hostile',\n"
    "                     in_process=sys.argv[3] == 'in_process')\n"
    "print(json.dumps({'run_id': o.run_id, 'success': o.success, 'failures': o.failures,\n"
    "                  'chunked': o.chunked, 'embedded': o.embedded}))\n"
)


def _python(*args: str, timeout: float = 400) -> str:
    out = subprocess.run(
        [sys.executable, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=child_env(CODE_INDEX_SHARDS=SHARDS),
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("execution", ["step_processes", "in_process"])
def test_hostile_subset_through_the_dagster_job(
    tmp_path: Path, dagster_home: Path, execution: str
) -> None:
    """Through the step server's processes, and in one process as a small run goes."""
    root, db_uri = tmp_path / "repo", str(tmp_path / "db")
    expected = build_corpus(root, tmp_path / "outside", big=False)
    shutil.rmtree(
        root / "deep"
    )  # covered by the direct test; here it would only slow the CPU model
    expected = {p: r for p, r in expected.items() if not p.startswith("deep/")}
    # Nothing races this run: those two files are plain files here.
    expected["race/vanishes.py"] = expected["race/becomes_dir.py"] = INDEXED

    outcome = json.loads(_python("-c", _RUN, str(root), db_uri, execution).strip().splitlines()[-1])
    assert outcome["success"], outcome["failures"]
    assert len(outcome["chunked"]) == len(outcome["embedded"]) == int(SHARDS)
    assert_clean(db_uri)

    status = json.loads(_python("-m", "orchestration.cli", "--db", db_uri, "status", "--json"))
    entry = status["repositories"]["hostile"]
    skips = {p: r for p, r in expected.items() if r != INDEXED}
    assert {s["path"]: s["reason"] for s in entry["skipped_files"]} == skips
    assert entry["files"] == len(expected) - len(skips)
    assert entry["chunks"] == entry["vectors"] > 0
    assert skip_reasons.SYMLINK_OUTSIDE in entry["skipped_by_reason"]

    with dg.DagsterInstance.get() as instance:  # the partition metadata lists the same skips
        files_events = materializations(instance, outcome["run_id"], "files")
        assert sum(metadata_of(e)["skipped_files"] for e in files_events) == len(skips)
        starts = instance.all_logs(outcome["run_id"], of_type=dg.DagsterEventType.STEP_START)
        pids = {e.dagster_event.pid for e in starts}
        assert (len(pids) == 1) == (execution == "in_process"), pids
