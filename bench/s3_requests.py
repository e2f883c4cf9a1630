"""What the index's table I/O costs on an object store, in requests and seconds.

`python -m bench.s3_requests [--mb 0.5] [--rounds 3]`

A CPython slice (32 shards) is chunked, embedded and checked against moto's S3 on loopback,
the way a run's steps do it, each stage through one kept connection, and moto's request
log is counted per stage:
- chunking, one partition after another (`chunk_partition`) and overlapped, each one's
  writes committed while the next is parsed (`chunk_partitions`, what a chunk step runs),
  alternated over `--rounds`, each on a fresh database;
- embedding every partition with the embedding worker (a simulated encoder, so only the
  I/O counts);
- the run's checks (`integrity.check_all`) and the manifest compaction.

Prefix with `flock /tmp/cpu.lock`: moto serves every request with Python on this machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import corpora, machine, results
from indexer_core.embedding.model_location import DEFAULT_MODEL

BUCKET = "code-index"
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _moto(log: Path) -> tuple[subprocess.Popen, str]:
    from tests.cluster.services import _bin, free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc)
    return proc, f"http://127.0.0.1:{port}"


class RequestLog:
    """moto's request lines (`"GET /bucket/key HTTP/1.1" 200`), counted since a mark."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mark = 0

    def _lines(self) -> list[str]:
        text = _COLOUR.sub("", self.path.read_text())  # moto colours some status lines
        return [line.split('"')[1] for line in text.splitlines() if '"' in line]

    def since_mark(self) -> Counter:
        lines = self._lines()[self.mark :]
        self.mark += len(lines)
        return Counter(_kind(line) for line in lines)


def _kind(line: str) -> str:
    """`GET data`, `LIST versions`, `PUT manifest`...: a request by method and object kind."""
    method, target = line.split()[:2]
    if "list-type=2" in target:
        return f"LIST {'versions' if '_versions' in target else 'other'}"
    for kind in ("data", "_versions", "_transactions"):
        if f"/{kind}/" in target:
            return f"{method} {kind.strip('_')}"
    return f"{method} other"


def run(mb: float, rounds: int, work: Path) -> dict:
    from indexer_core.discovery.listing import list_candidates
    from indexer_core.embedding.model import load_encoder
    from indexer_core.indexing.chunk_step import PartitionJob, chunk_partition, chunk_partitions
    from indexer_core.indexing.embed_worker import EmbeddingWorker
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.storage import housekeeping, integrity
    from indexer_core.storage import tables as storage

    corpus = corpora.resolve("cpython")
    root = corpora.materialize(corpus, corpora.take(corpus.files(), int(mb * 1e6)), work / "slice")
    log_path = work / "moto.log"
    proc, endpoint = _moto(log_path)
    try:
        import boto3

        credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **credentials
        ).create_bucket(Bucket=BUCKET)
        storage.use_storage_options(
            {"aws_endpoint": endpoint, "allow_http": "true", "aws_region": "us-east-1"}
            | credentials
        )
        requests = RequestLog(log_path)
        settings = IndexSettings()
        candidates = list_candidates(str(root), settings.discovery())
        jobs = [PartitionJob("slice", str(root), s, candidates) for s in range(settings.shards)]
        chunking: dict[str, list] = {"one_after_another": [], "overlapped": []}
        uri = ""
        for index in range(rounds):
            for mode, runs in chunking.items():
                uri = f"s3://{BUCKET}/{mode}-{index}"
                db = storage.kept_connection(uri)
                requests.since_mark()
                started = time.perf_counter()
                if mode == "overlapped":
                    failed = [
                        o
                        for _, o in chunk_partitions(uri, jobs, settings, db=db)
                        if isinstance(o, Exception)
                    ]
                    assert not failed, failed
                else:
                    for job in jobs:
                        chunk_partition(
                            uri,
                            job.repo,
                            job.root,
                            job.shard,
                            settings,
                            db=db,
                            candidates=candidates,
                        )
                seconds = time.perf_counter() - started
                runs.append({"seconds": seconds, "requests": requests.since_mark()})

        # The last database (overlapped) goes on: embedding, checks, compaction.
        embedder = load_encoder(DEFAULT_MODEL, "simulated:360000", 64, 1)
        worker = EmbeddingWorker(uri, embedder)
        started = time.perf_counter()
        embedded = [worker.submit("slice", s) for s in range(settings.shards)]
        chunks = sum(f.result().chunks for f in embedded)
        worker.close()
        embedding = {"seconds": time.perf_counter() - started, "requests": requests.since_mark()}
        started = time.perf_counter()
        outcomes = integrity.check_all(uri, embedder.dim)
        assert all(o.passed for o in outcomes), outcomes
        checks = {"seconds": time.perf_counter() - started, "requests": requests.since_mark()}
        started = time.perf_counter()
        compaction = housekeeping.compact_manifest(uri)
        compact = {"seconds": time.perf_counter() - started, "requests": requests.since_mark()}
    finally:
        proc.terminate()
        proc.wait()

    def summary(stage: dict) -> dict:
        return {
            "seconds": round(stage["seconds"], 3),
            "requests": sum(stage["requests"].values()),
            "by_kind": dict(stage["requests"].most_common()),
        }

    sections: dict = {
        "chunking": {
            "summary": {
                "one_after_another_median_s": round(
                    statistics.median(r["seconds"] for r in chunking["one_after_another"]), 3
                ),
                "overlapped_median_s": round(
                    statistics.median(r["seconds"] for r in chunking["overlapped"]), 3
                ),
            },
            **{
                f"{mode}_s": " / ".join(f"{r['seconds']:.2f}" for r in runs)
                for mode, runs in chunking.items()
            },
            **{
                f"{mode}_requests": sum(runs[-1]["requests"].values())
                for mode, runs in chunking.items()
            },
            "overlapped_by_kind": dict(chunking["overlapped"][-1]["requests"].most_common()),
        },
        "embedding": summary(embedding),
        "checks": summary(checks),
        "manifest_compaction": summary(compact)
        | {
            "fragments": f"{compaction.fragments_before} -> {compaction.fragments_after}"
            if compaction
            else "nothing to merge"
        },
    }
    return {
        "bench": "s3_requests",
        "corpus": f"cpython slice, {mb} MB, {settings.shards} shards, {chunks} chunks",
        "corpus_root": str(root),
        "machine_line": machine.one_line(machine.describe()),
        "date": results.stamp(),
        "command": "python -m bench.s3_requests " + " ".join(sys.argv[1:]),
        "sections": sections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "reports")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as work:
        result = run(args.mb, args.rounds, Path(work))
    result["seconds"] = round(time.perf_counter() - started, 1)
    json_path, md_path = results.write(result, args.out, "s3_requests")
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
