"""What the local Dagster instance costs per event: `CODE_INDEX_DAGSTER_SYNC`, and the event
log's kept connections (`orchestration.instance_connections`).

`python -m bench.instance_sync [--ops 200] [--pairs 4] [--repo PATH] [--events-only]`

1. SQLite alone: connect, insert one row, commit, close (what Dagster's SQLite storages do for
   every event), in ms per operation, for each journal mode and `synchronous` level.
2. The index job's fixed cost: `code-index index` of a small repository into a fresh database
   and Dagster home, `full` and `off` interleaved `--pairs` times. It reports the CLI's wall
   and the run's own seconds from its event log (`bench.fixed_cost.index_once`). The default
   repository is one generated file, so the run is all fixed cost.
3. Dagster's own event log, stock (a new engine and connection per operation) against kept
   connections: ms per engine event stored, per asset materialization stored and per read
   of a run's log, each way in a fresh interpreter, interleaved `--pairs` times.

Prefix with `flock /tmp/cpu.lock` where others measure on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.fixed_cost import index_once, one_file_repo

MODES = (("DELETE", "FULL"), ("DELETE", "OFF"), ("WAL", "NORMAL"), ("WAL", "OFF"))


def sqlite_ms_per_operation(directory: Path, ops: int) -> dict[str, float]:
    """ms per connect-insert-commit-close, per (journal mode, synchronous level)."""
    path = directory / "events.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS events (body TEXT)")
    out = {}
    for journal, level in MODES:
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.close()
        started = time.perf_counter()
        for _ in range(ops):
            conn = sqlite3.connect(path)
            conn.execute(f"PRAGMA synchronous={level}")
            conn.execute("INSERT INTO events VALUES (?)", ("x" * 500,))
            conn.commit()
            conn.close()
        out[f"{journal}, {level}"] = round((time.perf_counter() - started) / ops * 1000, 3)
    return out


EVENT_LOG_SCRIPT = """
import sys, time
import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.storage.dagster_run import DagsterRun
from orchestration import instance_connections, instance_sync

instance_sync.install("off")
if sys.argv[1] == "kept":
    assert instance_connections.install()
ops = int(sys.argv[2])
with dg.DagsterInstance.get() as instance:
    run = instance.add_run(DagsterRun(job_name="bench", run_id="b" * 36))
    instance.report_engine_event("first", run)
    mat = dg.AssetMaterialization(  # as the index job's: a partition, metadata, a data version
        "chunks",
        partition="p",
        metadata={f"k{i}": i for i in range(20)},
        tags={"dagster/data_version": "v1"},
    )
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="bench",
        event_specific_data=StepMaterializationData(mat),
    )
    timed = {}
    started = time.perf_counter()
    for i in range(ops):
        instance.report_engine_event(f"event {i}", run)
    timed["engine_event_ms"] = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(ops):
        instance.report_dagster_event(event, run_id=run.run_id)
    timed["asset_materialization_ms"] = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(ops):
        instance.get_records_for_run(run.run_id, limit=10)
    timed["run_log_read_ms"] = time.perf_counter() - started
    assert len(instance.all_logs(run.run_id)) == 2 * ops + 1
print(" ".join(f"{k}={v / ops * 1000:.3f}" for k, v in timed.items()))
"""


def event_log_ms(work: Path, ops: int, pairs: int) -> dict[str, dict[str, float]]:
    """Medians over `pairs` interleaved fresh interpreters, stock and kept, in ms per op."""
    seen: dict[str, list[dict[str, float]]] = {"stock": [], "kept": []}
    for pair in range(pairs):
        for way, rows in seen.items():
            home = work / f"events-{way}-{pair}"
            home.mkdir()
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT)}
            done = subprocess.run(
                [sys.executable, "-c", EVENT_LOG_SCRIPT, way, str(ops)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            row = dict(part.split("=") for part in done.stdout.split())
            rows.append({key: float(value) for key, value in row.items()})
            print(way, rows[-1], flush=True)
    return {
        way: {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}
        for way, rows in seen.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--repo", type=Path, default=None, help="default: one generated file")
    parser.add_argument("--events-only", action="store_true", help="only part 3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        result: dict = {"event_log_ms_per_operation": event_log_ms(work, args.ops, args.pairs)}
        print(json.dumps(result), flush=True)
        if args.events_only:
            return
        result["sqlite_ms_per_operation"] = sqlite_ms_per_operation(work, args.ops)
        print(json.dumps(result), flush=True)
        repo = args.repo or one_file_repo(work)
        runs: dict[str, list[dict]] = {"full": [], "off": []}
        for pair in range(args.pairs):
            for level, rows in runs.items():
                timed = index_once(
                    PROJECT, repo, work / f"{level}-{pair}", {"CODE_INDEX_DAGSTER_SYNC": level}
                )
                rows.append({"cli_wall_s": timed["wall_s"], "run_s": timed["run_s"]})
                print(level, rows[-1], flush=True)
        result["index_runs"] = runs
        result["index_means"] = {
            level: {
                key: round(statistics.mean(r[key] for r in rows), 2)
                for key in ("cli_wall_s", "run_s")
            }
            for level, rows in runs.items()
        }
        result["off_faster_pairs"] = sum(
            off["cli_wall_s"] < full["cli_wall_s"] for full, off in zip(runs["full"], runs["off"])
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
