"""The first queries after an index change, in a long-lived search process (the MCP server).

On the 100k-row database of `bench/search_latency.py` (built there, or here when --work has
none): warm the process, time a full load of the chunk catalogue and of the vectors' row-id
map, then write a small change (three chunks and their vectors, as a sensor run after an
edit would) and time the next queries one by one: the first one brings the catalogue up to
the new `chunks` version (by the rows that changed, `ChunkCatalog.refreshed`). The rows
written are deleted again at the end, and the first query after that is timed too, so a
rerun measures the same table. Last, on a copy of the `chunks` table, the catalogue's
refresh after a compaction (every row moved) against a full load.

    python bench/search_refresh.py [--work DIR] [--queries 8] [--no-compaction]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.search_latency import QUERIES, base_index, replicate
from indexer_core.discovery.hashing import stable_id
from indexer_core.embedding.model import load_embedder
from indexer_core.search import indexes as search_index
from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.index_view import open_index
from indexer_core.search.query import search
from indexer_core.search.row_ids import RowIdMap
from indexer_core.storage import tables as storage


def _database(work: Path, embedder) -> str:
    uri, done = str(work / "big"), work / "big.done"
    if not done.exists():
        rows = replicate(base_index(work, 1000, embedder), uri, 100_000, 0.02, seed=1)
        search_index.build_fts_indexes(uri)
        done.write_text(str(rows))
    return uri


def _write_change(uri: str) -> list[str]:
    """Three new chunks with vectors: copies of existing rows under new ids and a new path."""
    db = storage.connect(uri)
    chunks, vectors = db.open_table(storage.CHUNKS), db.open_table(storage.VECTORS)
    sample = chunks.search().limit(3).to_arrow().to_pylist()
    ids = [c["chunk_id"] for c in sample]
    vecs = {
        r["chunk_id"]: r
        for r in storage.read_rows(vectors, storage.id_list_filter("chunk_id", ids)).to_pylist()
    }
    new_ids = [stable_id(cid, "refresh-bench") for cid in ids]
    new_c = [{**c, "chunk_id": n, "path": f"refresh/{c['path']}"} for c, n in zip(sample, new_ids)]
    new_v = [
        {**vecs[c["chunk_id"]], "chunk_id": n, "path": f"refresh/{c['path']}"}
        for c, n in zip(sample, new_ids)
    ]
    chunks.add(pa.Table.from_pylist(new_c, schema=chunks.schema))
    vectors.add(pa.Table.from_pylist(new_v, schema=vectors.schema))
    return new_ids


def _compaction(uri: str, tmp: Path) -> dict:
    """A compaction moves every row to a new row id: the catalogue's refresh after one, on a
    copy of the `chunks` table (the shared database keeps its layout)."""
    copy = tmp / "compaction"
    shutil.copytree(Path(uri) / f"{storage.CHUNKS}.lance", copy / f"{storage.CHUNKS}.lance")
    table = storage.connect(str(copy)).open_table(storage.CHUNKS)
    catalog = ChunkCatalog.load(table, table.version)
    table.optimize()
    t0 = time.perf_counter()
    catalog.refreshed(table, table.version)
    refresh = time.perf_counter() - t0
    t0 = time.perf_counter()
    ChunkCatalog.load(table, table.version)
    return {
        "catalogue_refresh_after_compaction_seconds": round(refresh, 2),
        "full_catalogue_load_after_compaction_seconds": round(time.perf_counter() - t0, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", help="the search_latency work directory (built here if empty)")
    parser.add_argument("--queries", type=int, default=8, help="queries timed after the change")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--no-compaction", action="store_true", help="skip the compaction step")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "search_refresh.json")
    )
    args = parser.parse_args()
    embedder = load_embedder(args.model, "auto")
    with tempfile.TemporaryDirectory(prefix="search-refresh-") as tmp:
        uri = _database(Path(args.work or tmp), embedder)
        index = open_index(uri)
        for q in QUERIES[:3]:
            search(uri, q, k=10, embedder=embedder)  # warm: tables, catalogue, row-id maps
        chunks, vectors = index.table(storage.CHUNKS), index.table(storage.VECTORS)
        t0 = time.perf_counter()
        ChunkCatalog.load(chunks, chunks.version)
        catalog_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        RowIdMap.load(vectors, vectors.version)
        row_map_load = time.perf_counter() - t0
        served_before = index.catalog().version

        new_ids = _write_change(uri)
        for table in (chunks, vectors):
            table.checkout_latest()  # as the 2 s consistency interval would, without waiting
        after: list[dict] = []
        changed_at = time.perf_counter()
        for q in (QUERIES * 2)[: args.queries]:
            t0 = time.perf_counter()
            search(uri, q, k=10, embedder=embedder)
            after.append(
                {
                    "ms": round((time.perf_counter() - t0) * 1000, 1),
                    "catalogue_version": index.catalog().version,
                }
            )
        new_version = chunks.version
        while index._catalog.version != new_version and time.perf_counter() - changed_at < 120:
            time.sleep(0.05)
        fresh_after = time.perf_counter() - changed_at
        report = {
            "rows": chunks.count_rows(),
            "device": embedder.device,
            "full_catalogue_load_seconds": round(catalog_load, 2),
            "full_vector_row_map_load_seconds": round(row_map_load, 2),
            "catalogue_version_before": served_before,
            "chunks_version_after_change": new_version,
            "queries_after_change": after,
            "new_catalogue_in_service_after_seconds": round(fresh_after, 2),
        }
        storage.connect(uri).open_table(storage.CHUNKS).delete(
            storage.id_list_filter("chunk_id", new_ids)
        )
        storage.connect(uri).open_table(storage.VECTORS).delete(
            storage.id_list_filter("chunk_id", new_ids)
        )
        for table in (chunks, vectors):  # deleting them again is a change too
            table.checkout_latest()
        t0 = time.perf_counter()
        search(uri, QUERIES[0], k=10, embedder=embedder)
        report["first_query_after_deleting_them_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        if not args.no_compaction:
            report.update(_compaction(uri, Path(tmp)))
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
