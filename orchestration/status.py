"""What the index holds, per repository: for `code-index status` and the MCP server."""

from __future__ import annotations

from collections import Counter

from indexer_core import registry, storage


def status_report(db_uri: str) -> dict:
    db = storage.connect(db_uri)
    names = storage.table_names(db)
    report: dict = {"db_uri": db_uri, "repositories": {}}
    for repo, root in sorted(registry.repositories(db_uri).items()):
        entry: dict = {"root": root, "files": 0, "skipped": 0, "skipped_by_reason": {}, "chunks": 0, "vectors": 0}
        where = storage.repo_filter(repo)
        if storage.FILES in names:
            files = storage.read_rows(db.open_table(storage.FILES), where, ["path", "status", "reason", "detail"]).to_pylist()
            entry["files"] = sum(1 for f in files if f["status"] == "indexed")
            skipped = [f for f in files if f["status"] != "indexed"]
            entry["skipped"] = len(skipped)
            entry["skipped_by_reason"] = dict(Counter(f["reason"] for f in skipped))
            entry["skipped_files"] = [{"path": f["path"], "reason": f["reason"], "detail": f["detail"]} for f in skipped]
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
        lines.append(f"  {repo} ({e['root']}): {e['files']} files, {e['chunks']} chunks, {e['vectors']} vectors; "
                     f"skipped {e['skipped']} ({reasons})")
        if show_skipped:
            for s in e.get("skipped_files", []):
                lines.append(f"    {s['reason']:<16} {s['path']!r}  {s['detail']}")
    return "\n".join(lines)
