"""What the index holds, per repository: for `code-index status` and the MCP server."""

from __future__ import annotations

import os
from collections import Counter

from indexer_core.indexing.partitioning import partition_name
from indexer_core.indexing.settings import IndexSettings
from indexer_core.indexing.staleness import ChangeSet, detect_changes
from indexer_core.storage import registry
from indexer_core.storage import tables as storage
from orchestration import config


def status_report(db_uri: str) -> dict:
    db = storage.connect(db_uri)
    names = storage.table_names(db)
    report: dict = {"db_uri": db_uri, "repositories": {}}
    for repo, root in sorted(registry.repositories(db_uri).items()):
        entry: dict = {
            "root": root,
            "files": 0,
            "skipped": 0,
            "skipped_by_reason": {},
            "chunks": 0,
            "vectors": 0,
        }
        where = storage.repo_filter(repo)
        if storage.FILES in names:
            files = storage.read_rows(
                db.open_table(storage.FILES), where, ["path", "status", "reason", "detail"]
            ).to_pylist()
            entry["files"] = sum(1 for f in files if f["status"] == "indexed")
            skipped = [f for f in files if f["status"] != "indexed"]
            entry["skipped"] = len(skipped)
            entry["skipped_by_reason"] = dict(Counter(f["reason"] for f in skipped))
            entry["skipped_files"] = [
                {"path": f["path"], "reason": f["reason"], "detail": f["detail"]} for f in skipped
            ]
        if storage.CHUNKS in names:
            entry["chunks"] = db.open_table(storage.CHUNKS).count_rows(where)
        if storage.VECTORS in names:
            entry["vectors"] = db.open_table(storage.VECTORS).count_rows(where)
        report["repositories"][repo] = entry
    return report


def summarize(db_uri: str, show_skipped: bool = False) -> str:
    report = status_report(db_uri)
    lines = [f"index: {db_uri}"]
    if not report["repositories"]:
        lines.append("  no repositories indexed yet")
    for repo, e in report["repositories"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(e["skipped_by_reason"].items())) or "none"
        lines.append(
            f"  {repo} ({e['root']}): {e['files']} files, {e['chunks']} chunks, {e['vectors']} "
            f"vectors; "
            f"skipped {e['skipped']} ({reasons})"
        )
        if show_skipped:
            for s in e.get("skipped_files", []):
                lines.append(f"    {s['reason']:<16} {s['path']!r}  {s['detail']}")
    return "\n".join(lines)


def pending_changes(db_uri: str, repo: str, root: str, settings: IndexSettings) -> ChangeSet | None:
    """How a registered repository differs from the index (its stale shards and why, the
    bytes to chunk again), by the same change detection the sensor runs; None when `repo` is
    not registered at `root` (then only a run can register it)."""
    registered = registry.repositories(db_uri).get(repo)
    if registered is None or registered != os.path.realpath(root):
        return None
    return detect_changes(db_uri, repo, root, settings)


def partition_status(db_uri: str, repo: str, root: str, settings: IndexSettings) -> list[dict]:
    """Each shard's rows and whether it is stale (`staleness.detect_changes`, as the sensor)."""
    db = storage.connect(db_uri)
    names = storage.table_names(db)
    try:
        changes = detect_changes(db_uri, repo, root, settings)
    except OSError:
        changes = None
    files: Counter = Counter()
    if storage.FILES in names:
        rows = storage.read_rows(
            db.open_table(storage.FILES),
            f"{storage.repo_filter(repo)} AND status = 'indexed'",
            ["shard"],
        )
        files = Counter(rows.column("shard").to_pylist())
    shards = sorted(set(files) | (set(changes.index_versions) if changes else set()))
    out = []
    for shard in shards:
        where = storage.partition_filter(repo, shard)
        out.append(
            {
                "partition": partition_name(repo, shard),
                "files": files.get(shard, 0),
                "chunks": db.open_table(storage.CHUNKS).count_rows(where)
                if storage.CHUNKS in names
                else 0,
                "vectors": db.open_table(storage.VECTORS).count_rows(where)
                if storage.VECTORS in names
                else 0,
                "indexed_version": changes.index_versions.get(shard, "") if changes else "",
                "current_version": changes.disk_versions.get(shard, "") if changes else "",
                "stale": changes is None or shard in changes.stale,
                "why": (changes.stale.get(shard, "") if changes else "repository not readable"),
            }
        )
    return out


def last_run() -> dict | None:
    """The latest run recorded in `$DAGSTER_HOME`, when there is one."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.isdir(home):
        return None
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(limit=1)
        if not runs:
            return None
        record = runs[0]
        run = record.dagster_run
        return {
            "run_id": run.run_id,
            "job": run.job_name,
            "status": run.status.value,
            "partitions": run.tags.get("dagster/partition")
            or run.tags.get("dagster/asset_partition_range_start", ""),
            "started": record.start_time,
            "ended": record.end_time,
        }


def index_status(db_uri: str, check_stale: bool = True) -> dict:
    """Repositories, partitions with rows and staleness, search indexes, and the last run."""
    from indexer_core.search import indexes as search_index

    report = status_report(db_uri)
    db = storage.connect(db_uri)
    names = storage.table_names(db)
    models: list[str] = []
    if storage.VECTORS in names:
        vectors = db.open_table(storage.VECTORS)
        models = sorted(
            set(storage.read_rows(vectors, None, ["model"]).column("model").to_pylist())
        )
        report["ann_index"] = search_index.has_vector_index(vectors)
        report["vectors_total"] = vectors.count_rows()
    if storage.CHUNKS in names:
        chunks = db.open_table(storage.CHUNKS)
        report["fts_index"] = search_index.fts_ready(chunks)
        report["chunks_total"] = chunks.count_rows()
    report["models"] = models
    settings = config.load().index_settings(model=models[0] if len(models) == 1 else None)
    stale: list[str] = []
    for repo, entry in report["repositories"].items():
        entry.pop("skipped_files", None)
        if check_stale:
            entry["partitions"] = partition_status(db_uri, repo, entry["root"], settings)
            stale += [p["partition"] for p in entry["partitions"] if p["stale"]]
    report["stale_partitions"] = stale
    report["last_run"] = last_run()
    return report
