"""Sensors: start a run for exactly the shards a repository change touched; check after runs."""

import hashlib
import json
import os

import dagster as dg

from indexer_core.indexing.staleness import detect_changes
from indexer_core.storage import registry
from orchestration.jobs import check_job, index_job, partition_tags
from orchestration.partitions import keys_for_repo, repo_partitions
from orchestration.resources import CodeIndexResource

SENSOR_INTERVAL_SECONDS = int(os.environ.get("CODE_INDEX_SENSOR_INTERVAL", "30"))
# Sensors start running with the daemon unless CODE_INDEX_SENSORS=off (then switch them on in the UI).
DEFAULT_STATUS = (
    dg.DefaultSensorStatus.STOPPED
    if os.environ.get("CODE_INDEX_SENSORS", "on") == "off"
    else dg.DefaultSensorStatus.RUNNING
)


def configured_repositories() -> dict[str, str]:
    """Repositories named in `CODE_INDEX_REPOS` (`name=path;name=path`), registered on a tick."""
    spec = os.environ.get("CODE_INDEX_REPOS", "").strip()
    pairs = [item.split("=", 1) for item in spec.split(";") if "=" in item]
    return {name.strip(): path.strip() for name, path in pairs}


@dg.sensor(
    job=index_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DEFAULT_STATUS,
    description="Scans each registered repository (git when it is a checkout, size+mtime otherwise) "
    "and requests one run for the shards whose content changed.",
)
def repository_changes(context: dg.SensorEvaluationContext, code_index: CodeIndexResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    roots = registry.repositories(code_index.db_uri)
    for name, path in configured_repositories().items():
        if os.path.isdir(path) and roots.get(name) != os.path.realpath(path):
            roots[name] = registry.register(code_index.db_uri, name, path)
    known = set(context.instance.get_dynamic_partitions(repo_partitions.name))
    new_partitions = sorted(set(roots) - known)
    settings = code_index.settings()
    requests = []
    for repo, root in sorted(roots.items()):
        if not os.path.isdir(root):
            context.log.warning(f"repository {repo}: {root} does not exist; skipped")
            continue
        changes = detect_changes(
            code_index.db_uri, repo, root, settings, watch=code_index.watch_repositories
        )
        requested = cursor.get(repo, {})
        todo = sorted(
            s for s in changes.stale if requested.get(str(s)) != changes.disk_versions.get(s)
        )
        context.log.info(
            f"{repo}: {changes.files_seen} files, {changes.files_hashed} hashed, "
            f"{'scanned' if changes.scanned else 'no change seen by the watch'}, "
            f"{'watch off: ' + changes.unwatched + ', ' if changes.unwatched else ''}"
            f"{len(changes.stale)} stale shards, {len(todo)} to request, {changes.seconds:.2f}s"
        )
        if not todo:
            continue
        fingerprint = hashlib.blake2b(
            json.dumps({s: changes.disk_versions[s] for s in todo}, sort_keys=True).encode(),
            digest_size=8,
        ).hexdigest()
        requests.append(
            dg.RunRequest(run_key=f"{repo}:{fingerprint}", tags=partition_tags(repo, todo))
        )
        cursor[repo] = {**requested, **{str(s): changes.disk_versions[s] for s in todo}}
    if not requests and not new_partitions:
        return dg.SkipReason("no repository changed")
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor, sort_keys=True),
        dynamic_partitions_requests=[repo_partitions.build_add_request(new_partitions)]
        if new_partitions
        else [],
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[index_job],
    request_job=check_job,
    default_status=DEFAULT_STATUS,
    description="Runs the table integrity checks after every successful index run.",
)
def check_after_index(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"checks-{context.dagster_run.run_id}")


__all__ = ["check_after_index", "keys_for_repo", "repository_changes"]
