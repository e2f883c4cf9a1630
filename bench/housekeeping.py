"""Table size, versions, fragments and query latency after 1,000 incremental runs, with and
without housekeeping.

Two databases start from the same full index (`--files` files in `--shards` partitions,
`--chunks` chunks a file, 384-dim vectors) and receive the same 1,000 incremental runs. Each
run is the write path of a partition rerun after `--edit` files of one partition changed,
through the production functions and schemas, each commit on freshly opened tables as a
run opens them:

1. `chunks`: `replace_rows` scoped to the partition and the changed files' ids;
2. `files`: `replace_rows` of the partition's whole manifest;
3. `embedding_cache`: `append_rows` of the new texts' vectors;
4. `vectors`: `replace_rows` of the new chunks' vectors, deleting the replaced ones.

Chunking and embedding are left out (they do not touch table layout): chunk text is
synthetic and vectors come from a seeded generator. One database never gets housekeeping;
the other gets `optimize_index` (the housekeeping job: compaction, index update, cleanup)
whenever the `housekeeping_when_crowded` sensor's rule says so (a table with more than
`--max-fragments` fragments, checked after every run; the check is timed with the cleanup),
or every `--cleanup-every` runs if given. The grace is 0 because no reader is open between
runs here (in service the grace keeps versions of the last hour). Every `--checkpoint` runs
both are measured *before* that run's cleanup, so the cleaned database is never caught just
after one: directory size, versions, fragments, and p50/p95 of a vector search (top 10, flat)
and of a filtered scan (the partition's chunk rows, as every run reads them), each on a
freshly opened table. Results: bench/results/housekeeping.json and .md.

    python -m bench.housekeeping            # 1,000 runs; a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import machine, results
from indexer_core.storage import tables as storage
from indexer_core.storage.housekeeping import (
    MAX_FRAGMENTS,
    crowded_tables,
    directory_bytes,
    optimize_index,
)

RESULTS = Path(__file__).resolve().parent / "results"
REPO = "bench"
DIM = 384
MODEL = "bench-model"


def _hex(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Corpus:
    """Files spread over partitions; each file's chunks change when its generation changes."""

    def __init__(self, files: int, shards: int, chunks: int) -> None:
        self.shards, self.chunks = shards, chunks
        self.paths = [f"pkg{i % 20}/mod{i}.py" for i in range(files)]
        self.shard_of = {p: i % shards for i, p in enumerate(self.paths)}
        self.index = {p: i for i, p in enumerate(self.paths)}
        self.generation = dict.fromkeys(self.paths, 0)

    def in_shard(self, shard: int) -> list[str]:
        return [p for p in self.paths if self.shard_of[p] == shard]

    def chunk_rows(self, paths: list[str]) -> list[dict]:
        out = []
        for path in paths:
            gen, fid = self.generation[path], _hex(f"{REPO}\0{path}")
            count = self.chunks + gen % 3  # edits add and remove chunks, as real ones do
            for j in range(count):
                # An edit changes half the file's chunks; the rest keep their text and id.
                version = gen if j % 2 == 0 else 0
                body = f"def f_{j}_{version}_{self.index[path]}(x):\n" + "".join(
                    f"    x = x * {k} + {j}\n" for k in range(12)
                )
                content_hash = _hex(body)
                out.append(
                    {
                        "chunk_id": _hex(f"{path}\0{j}\0{content_hash}"),
                        "repo": REPO,
                        "path": path,
                        "file_id": fid,
                        "shard": self.shard_of[path],
                        "language": "python",
                        "kind": "function",
                        "name": f"f_{j}",
                        "scope": path,
                        "parent_id": "",
                        "start_line": 14 * j + 1,
                        "end_line": 14 * j + 13,
                        "content": body,
                        "embed_text": f"# {path}\n{body}",
                        "file_hash": _hex(f"{path}\0{gen}"),
                        "content_hash": content_hash,
                    }
                )
        return out

    def manifest_rows(self, shard: int) -> list[dict]:
        return [
            {
                "file_id": _hex(f"{REPO}\0{p}"),
                "repo": REPO,
                "path": p,
                "shard": shard,
                "status": "indexed",
                "reason": "",
                "detail": "",
                "language": "python",
                "size": 2000 + self.generation[p],
                "mtime_ns": self.generation[p],
                "file_hash": _hex(f"{p}\0{self.generation[p]}"),
                "chunks": self.chunks,
                "chunker": "bench",
            }
            for p in self.in_shard(shard)
        ]


def _vector(content_hash: str) -> np.ndarray:
    v = np.random.default_rng(int(content_hash[:16], 16)).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _vectors(values: list[np.ndarray]) -> pa.FixedSizeListArray:
    flat = np.stack(values).astype(np.float32).ravel() if values else np.empty(0, np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), DIM)


def _vector_rows(chunks: list[dict]) -> pa.Table:
    columns = [
        "chunk_id",
        "repo",
        "path",
        "file_id",
        "shard",
        "language",
        "kind",
        "start_line",
        "end_line",
        "content_hash",
    ]
    table = {c: [r[c] for r in chunks] for c in columns}
    table["model"] = [MODEL] * len(chunks)
    table["vector"] = _vectors([_vector(r["content_hash"]) for r in chunks])
    return pa.table(table).cast(storage.vectors_schema(DIM))


def _cache_rows(chunks: list[dict]) -> pa.Table:
    hashes = sorted({r["content_hash"] for r in chunks})
    return pa.table(
        {
            "cache_key": [_hex(f"{h}\0{MODEL}") for h in hashes],
            "content_hash": hashes,
            "model": [MODEL] * len(hashes),
            "vector": _vectors([_vector(h) for h in hashes]),
        }
    ).cast(storage.cache_schema(DIM))


def _tables(db_uri: str) -> dict[str, object]:
    db = storage.connect(db_uri)
    return {
        storage.FILES: storage.open_or_create(db, storage.FILES, storage.FILES_SCHEMA),
        storage.CHUNKS: storage.open_or_create(db, storage.CHUNKS, storage.CHUNKS_SCHEMA),
        storage.VECTORS: storage.open_vectors(db, DIM),
        storage.EMBEDDING_CACHE: storage.open_cache(db, DIM),
    }


def write_partition(db_uri: str, corpus: Corpus, shard: int, changed: list[str]) -> None:
    """What a rerun of `shard` writes after `changed` files were edited, as the pipeline writes
    it."""
    t = _tables(db_uri)
    where = storage.partition_filter(REPO, shard)
    fids = {_hex(f"{REPO}\0{p}") for p in changed}
    old_ids = set(
        storage.read_rows(
            t[storage.CHUNKS],
            f"{where} AND {storage.id_list_filter('file_id', fids)}",
            ["chunk_id"],
        )
        .column("chunk_id")
        .to_pylist()
    )
    new = corpus.chunk_rows(changed)
    storage.replace_rows(
        t[storage.CHUNKS],
        "chunk_id",
        pa.Table.from_pylist(new, schema=storage.CHUNKS_SCHEMA),
        f"{where} AND {storage.id_list_filter('file_id', fids)}",
    )
    storage.replace_rows(
        t[storage.FILES],
        "file_id",
        pa.Table.from_pylist(corpus.manifest_rows(shard), schema=storage.FILES_SCHEMA),
        where,
    )
    fresh = [r for r in new if r["chunk_id"] not in old_ids]
    storage.append_rows(t[storage.EMBEDDING_CACHE], _cache_rows(fresh))
    stale = old_ids - {r["chunk_id"] for r in new}
    scope = f"{where} AND {storage.id_list_filter('chunk_id', stale)}" if stale else None
    storage.replace_rows(t[storage.VECTORS], "chunk_id", _vector_rows(fresh), scope)


def initial_index(db_uri: str, corpus: Corpus) -> None:
    for shard in range(corpus.shards):
        write_partition(db_uri, corpus, shard, corpus.in_shard(shard))


def _percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
    }


def measure(db_uri: str, shards: int, repeats: int) -> dict[str, object]:
    db = storage.connect(db_uri)
    vectors, chunks = db.open_table(storage.VECTORS), db.open_table(storage.CHUNKS)
    tables = {}
    for name in sorted(storage.table_names(db)):
        table = db.open_table(name)
        tables[name] = {
            "mb": round(directory_bytes(str(Path(db_uri) / f"{name}.lance")) / 1e6, 2),
            "versions": len(table.list_versions()),
            "fragments": table.stats()["fragment_stats"]["num_fragments"],
            "rows": table.count_rows(),
        }
    vector_ms, scan_ms = [], []
    for i in range(repeats):
        probe = _vector(_hex(f"probe{i}"))
        t0 = time.perf_counter()
        vectors.search(probe).limit(10).to_arrow()
        vector_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        storage.read_rows(
            chunks, storage.partition_filter(REPO, i % shards), ["chunk_id", "content_hash"]
        )
        scan_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "disk_mb": round(directory_bytes(db_uri) / 1e6, 2),
        "versions": sum(t["versions"] for t in tables.values()),
        "fragments": sum(t["fragments"] for t in tables.values()),
        "vector_search_ms": _percentiles(vector_ms),
        "filtered_scan_ms": _percentiles(scan_ms),
        "tables": tables,
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def _ratios(plain: dict, cleaned: dict) -> dict[str, float]:
    """without / with housekeeping: how many times bigger or slower the table left alone is."""
    return {
        "disk": _ratio(plain["disk_mb"], cleaned["disk_mb"]),
        "versions": _ratio(plain["versions"], cleaned["versions"]),
        "fragments": _ratio(plain["fragments"], cleaned["fragments"]),
        "vector_search_p50": _ratio(
            plain["vector_search_ms"]["p50"], cleaned["vector_search_ms"]["p50"]
        ),
        "vector_search_p95": _ratio(
            plain["vector_search_ms"]["p95"], cleaned["vector_search_ms"]["p95"]
        ),
        "filtered_scan_p50": _ratio(
            plain["filtered_scan_ms"]["p50"], cleaned["filtered_scan_ms"]["p50"]
        ),
        "filtered_scan_p95": _ratio(
            plain["filtered_scan_ms"]["p95"], cleaned["filtered_scan_ms"]["p95"]
        ),
    }


def _flat(point: dict) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in ("without", "with"):
        m = point[name]
        out[f"{name}: disk MB"] = m["disk_mb"]
        out[f"{name}: versions"] = m["versions"]
        out[f"{name}: fragments"] = m["fragments"]
        out[f"{name}: vector search p50/p95 ms"] = (
            f"{m['vector_search_ms']['p50']} / {m['vector_search_ms']['p95']}"
        )
        out[f"{name}: filtered scan p50/p95 ms"] = (
            f"{m['filtered_scan_ms']['p50']} / {m['filtered_scan_ms']['p95']}"
        )
        out[f"{name}: write ms/run (last {point['window']})"] = point[f"{name}_write_ms"]
    out.update({f"ratio without/with: {k}": v for k, v in point["ratio"].items()})
    return out


def run(
    updates: int,
    files: int,
    shards: int,
    chunks: int,
    edit: int,
    cleanup_every: int,
    max_fragments: int,
    checkpoint: int,
    repeats: int,
    workdir: str | None,
) -> dict:
    info = machine.describe()
    command = (
        f"python -m bench.housekeeping --updates {updates} --files {files} --shards {shards} "
        f"--chunks {chunks} --edit {edit} "
        + (
            f"--cleanup-every {cleanup_every}"
            if cleanup_every
            else f"--max-fragments {max_fragments}"
        )
    )
    result: dict = {
        "bench": "housekeeping",
        "machine": info,
        "machine_line": machine.one_line(info),
        "corpus": f"synthetic {files} files x {chunks} chunks",
        "corpus_root": "",
        "date": results.stamp(),
        "command": command,
        "sections": {},
    }
    work = Path(tempfile.mkdtemp(prefix="bench-housekeeping-", dir=workdir))
    dbs = {"without": str(work / "without"), "with": str(work / "with")}
    started = time.perf_counter()
    corpora = {name: Corpus(files, shards, chunks) for name in dbs}
    for name, db_uri in dbs.items():
        initial_index(db_uri, corpora[name])
    setup = {
        "initial_index_s": round(time.perf_counter() - started, 1),
        **measure(dbs["with"], shards, 5),
    }
    result["sections"]["initial index"] = {k: v for k, v in setup.items() if k != "tables"}

    rng = np.random.default_rng(7)
    write_ms: dict[str, list[float]] = {name: [] for name in dbs}
    cleanup_s: list[float] = []  # cleanups, each with the check that called for it
    check_s: list[float] = []  # checks that found nothing to do
    cleanups: list[int] = []
    points = []
    for step in range(1, updates + 1):
        shard = int(rng.integers(shards))
        members = corpora["with"].in_shard(shard)
        changed = [
            members[int(i)]
            for i in rng.choice(len(members), size=min(edit, len(members)), replace=False)
        ]
        for name, db_uri in dbs.items():
            corpus = corpora[name]
            for path in changed:
                corpus.generation[path] += 1
            t0 = time.perf_counter()
            write_partition(db_uri, corpus, shard, changed)
            write_ms[name].append((time.perf_counter() - t0) * 1000)
        if step % checkpoint == 0 or step == updates:
            window = min(checkpoint, 100)
            point = {
                "updates": step,
                "window": window,
                **{name: measure(db_uri, shards, repeats) for name, db_uri in dbs.items()},
                **{
                    f"{n}_write_ms": round(statistics.median(write_ms[n][-window:]), 1) for n in dbs
                },
            }
            point["ratio"] = _ratios(point["without"], point["with"])
            points.append(point)
            result["sections"][f"after {step} runs"] = _flat(point)
            print(
                f"{step}/{updates} runs, {time.perf_counter() - started:.0f}s: "
                f"disk {point['without']['disk_mb']} vs {point['with']['disk_mb']} MB, "
                f"write {point['without_write_ms']} vs {point['with_write_ms']} ms/run, "
                f"ratios {point['ratio']}",
                flush=True,
            )
            results.write(result, RESULTS, "housekeeping")
        t0 = time.perf_counter()
        due = (
            step % cleanup_every == 0
            if cleanup_every
            else bool(crowded_tables(dbs["with"], max_fragments))
        )
        if due:
            with (
                warnings.catch_warnings()
            ):  # grace 0 is safe here: nothing else has the tables open
                warnings.simplefilter("ignore", UserWarning)
                optimize_index(dbs["with"], grace=timedelta(0))
            cleanups.append(step)
            cleanup_s.append(time.perf_counter() - t0)
        else:
            check_s.append(time.perf_counter() - t0)
    final = measure(dbs["with"], shards, repeats)
    result["sections"]["with housekeeping, just after its last cleanup"] = {
        k: (f"{v['p50']} / {v['p95']}" if isinstance(v, dict) and "p50" in v else v)
        for k, v in final.items()
        if k != "tables"
    }
    total_s = time.perf_counter() - started
    result["sections"]["cost"] = {
        "runs": updates,
        "edited files per run": edit,
        "policy": f"every {cleanup_every} runs"
        if cleanup_every
        else f"a table over {max_fragments} fragments",
        "with: cleanups after runs": ", ".join(map(str, cleanups)),
        "with: check ms (median)": round(statistics.median(check_s) * 1000, 1) if check_s else 0.0,
        "without: write s total": round(sum(write_ms["without"]) / 1000, 1),
        "with: write s total": round(sum(write_ms["with"]) / 1000, 1),
        "with: cleanups": len(cleanup_s),
        "with: cleanup s total": round(sum(cleanup_s), 1),
        "with: cleanup s max": round(max(cleanup_s, default=0.0), 2),
        "without: first 100 runs ms/run (median)": round(
            statistics.median(write_ms["without"][:100]), 1
        ),
        "with: first 100 runs ms/run (median)": round(statistics.median(write_ms["with"][:100]), 1),
    }
    result["points"] = points
    result["final_with"] = final
    result["seconds"] = round(total_s, 1)
    results.write(result, RESULTS, "housekeeping")
    shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000, help="incremental runs")
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=8, help="chunks a file (edits add up to 2)")
    parser.add_argument("--edit", type=int, default=3, help="files edited in each run")
    parser.add_argument(
        "--cleanup-every", type=int, default=0, help="fixed cadence instead of the sensor's rule"
    )
    parser.add_argument(
        "--max-fragments", type=int, default=MAX_FRAGMENTS, help="the sensor's threshold"
    )
    parser.add_argument("--checkpoint", type=int, default=250, help="measure every N runs")
    parser.add_argument("--repeats", type=int, default=40, help="queries per latency figure")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    run(
        args.updates,
        args.files,
        args.shards,
        args.chunks,
        args.edit,
        args.cleanup_every,
        args.max_fragments,
        args.checkpoint,
        args.repeats,
        args.workdir,
    )
    print(f"wrote {RESULTS / 'housekeeping.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
