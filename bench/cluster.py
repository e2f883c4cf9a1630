"""The cluster profile against the multiprocess one, and embedding consumers scaling.

`python -m bench.cluster [--mb 0.5] [--device simulated:360000] [--rate 250] [--skip-walls]`

1. Walls: the same CPython slice indexed through the multiprocess profile (SQLite Dagster
   home, local LanceDB) and through the cluster profile on this machine (Celery workers on
   loopback Redis, Postgres instance, step outputs and LanceDB on moto's S3), one consumer
   each, `--device` for both (default: a simulated H100, so the walls show the pipeline's
   own costs); prints both walls and their ratio (target: cluster <= 1.3 x multiprocess),
   and the cluster profile's wall with LanceDB in a local directory (the share of S3).
2. Consumer scaling: the slice through the multiprocess profile with 1, 2 and 4 embedding
   consumers, each a simulated device of `--rate` tokens/s, on `--scale-shards` partitions;
   prints chunks/s end to end and against N x one consumer's (target: >= 0.8), and the same
   over the embedding window (first chunks landed to last vectors recorded).

Each run indexes a fresh database (nothing cached). Prefix with `flock /tmp/cpu.lock`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import corpora

PROJECT = Path(__file__).resolve().parents[1]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CODE_INDEX_", "DAGSTER_", "AWS_"))
    }
    env.update(PYTHONPATH=str(PROJECT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def _index(corpus: Path, env: dict[str, str]) -> float:
    """Wall seconds of one `code-index index` (a fresh database: every shard runs)."""
    cmd = [sys.executable, "-m", "orchestration.cli", "index", str(corpus), "--name", "slice"]
    started = time.perf_counter()
    done = subprocess.run(
        [*cmd, "-q"], env=env, cwd=PROJECT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)
    return wall


def _vector_rows(db: str, options: dict | None = None) -> int:
    from indexer_core.storage.lancedb_import import import_lancedb

    return import_lancedb().connect(db, storage_options=options).open_table("vectors").count_rows()


def walls(corpus: Path, work: Path, device: str) -> dict:
    from tests.cluster.services import Services

    local = _clean_env(CODE_INDEX_HOME=str(work / "mp"), CODE_INDEX_DEVICE=device)
    multiprocess = _index(corpus, local)
    services = Services(work / "cluster").start()
    # Steps read their settings on the workers: the device must be set there, not only on
    # the submitting host, or the cluster runs would load the real model.
    services.env.update(CODE_INDEX_EMBED_CONSUMERS="1", CODE_INDEX_DEVICE=device)
    try:
        services.workers([("cpu", "dagster", os.cpu_count() or 2, None), ("gpu", "gpu", 1, None)])
        env = services.process_env(
            services.home("home-submit"), CODE_INDEX_DB="s3://code-index/bench"
        )
        cluster = _index(corpus, env)
        # The same profile with LanceDB in a local directory: what S3 (moto here) costs.
        env["CODE_INDEX_DB"] = str(work / "cluster-local-db")
        cluster_local_db = _index(corpus, env)
    finally:
        services.stop()
        shutil.rmtree(getattr(services, "_pg_data", ""), ignore_errors=True)
    rows = _vector_rows(str(work / "mp" / "lancedb"))
    return {
        "device": device,
        "chunks": rows,
        "multiprocess_wall_s": round(multiprocess, 1),
        "cluster_wall_s": round(cluster, 1),
        "ratio": round(cluster / multiprocess, 2),
        "cluster_with_local_lancedb_wall_s": round(cluster_local_db, 1),
    }


def scaling(corpus: Path, work: Path, rate: float, shards: int, counts=(1, 2, 4)) -> dict:
    out: dict = {"rate_tokens_per_s": rate, "shards": shards, "runs": {}}
    for n in counts:
        home = work / f"scale-{n}"
        env = _clean_env(
            CODE_INDEX_HOME=str(home),
            CODE_INDEX_DEVICE=f"simulated:{rate:g}",
            CODE_INDEX_EMBED_CONSUMERS=str(n),
            CODE_INDEX_SHARDS=str(shards),
        )
        wall = _index(corpus, env)
        rows = _vector_rows(str(home / "lancedb"))
        window = _embedding_window(home / "dagster_home")
        out["runs"][n] = {
            "wall_s": round(wall, 1),
            "chunks_per_s": round(rows / wall, 1),
            "embedding_window_s": round(window, 1),
            "window_chunks_per_s": round(rows / window, 1),
        }
    one = out["runs"][counts[0]]
    for n, run in out["runs"].items():
        run["vs_n_times_one"] = round(run["chunks_per_s"] / (n * one["chunks_per_s"]), 2)
        run["window_vs_n_times_one"] = round(
            run["window_chunks_per_s"] / (n * one["window_chunks_per_s"]), 2
        )
    return out


def _embedding_window(dagster_home: Path) -> float:
    """Seconds from the first partition's chunks landing to the last partition's vectors:
    the consumers' share of the run, without its fixed start and end."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        stamps: dict[str, list[float]] = {"chunks": [], "vectors": []}
        for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            name = entry.dagster_event.event_specific_data.materialization.asset_key.path[-1]
            if name in stamps:
                stamps[name].append(entry.timestamp)
    return max(stamps["vectors"]) - min(stamps["chunks"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=0.5, help="CPython slice size")
    parser.add_argument("--device", default="simulated:360000", help="device of the wall runs")
    parser.add_argument("--rate", type=float, default=250, help="tokens/s per consumer")
    parser.add_argument("--scale-mb", type=float, default=0.25, help="slice of the scaling runs")
    parser.add_argument("--scale-shards", type=int, default=16)
    parser.add_argument("--counts", default="1,2,4", help="consumer counts of the scaling")
    parser.add_argument("--skip-walls", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    corpus = corpora.resolve("cpython")
    files = corpus.files()
    result: dict = {}
    if not args.skip_walls:
        sliced = corpora.materialize(
            corpus, corpora.take(files, int(args.mb * 1e6)), work / "slice"
        )
        result["walls"] = walls(sliced, work, args.device)
        print(json.dumps(result["walls"]), flush=True)
    if not args.skip_scaling:
        sliced = corpora.materialize(
            corpus, corpora.take(files, int(args.scale_mb * 1e6)), work / "scale-slice"
        )
        counts = tuple(int(n) for n in args.counts.split(","))
        result["scaling"] = scaling(sliced, work, args.rate, args.scale_shards, counts)
        print(json.dumps(result["scaling"]), flush=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
