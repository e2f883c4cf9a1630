"""The change sensor: start a run for exactly the shards a repository change touched."""

import hashlib
import json
import os

import dagster as dg

from indexer_core.indexing.staleness import detect_changes
from indexer_core.storage import registry
from orchestration import config
from orchestration.jobs import in_process_run_config, index_job, partition_tags
from orchestration.launch import runs_in_process
from orchestration.partitions import keys_for_repo, repo_partitions
from orchestration.resources import CodeIndexResource

_settings = config.load()
# Sensors start running with the daemon unless CODE_INDEX_SENSORS=off (then switch them on in the
# UI).
DEFAULT_STATUS = (
    dg.DefaultSensorStatus.RUNNING if _settings.sensors else dg.DefaultSensorStatus.STOPPED
)


@dg.sensor(
    job=index_job,
    minimum_interval_seconds=_settings.sensor_interval,
    default_status=DEFAULT_STATUS,
    description="Scans each registered repository "
    "(git when it is a checkout, size+mtime otherwise) "
    "and requests one run for the shards whose content changed.",
)
def repository_changes(context: dg.SensorEvaluationContext, code_index: CodeIndexResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    roots = registry.repositories(code_index.db_uri)
    current = config.load()  # read once per tick: the repositories, the in-process limit
    for name, path in current.repositories().items():
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
            f"{len(changes.stale)} stale shards, {len(todo)} to request, "
            f"{changes.changed_bytes} bytes new or changed, {changes.seconds:.2f}s"
        )
        if not todo:
            continue
        fingerprint = hashlib.blake2b(
            json.dumps({s: changes.disk_versions[s] for s in todo}, sort_keys=True).encode(),
            digest_size=8,
        ).hexdigest()
        small = runs_in_process(changes, current)  # no step server, no step launches
        requests.append(
            dg.RunRequest(
                run_key=f"{repo}:{fingerprint}",
                tags=partition_tags(repo, todo),
                run_config=in_process_run_config() if small else {},
            )
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


__all__ = ["keys_for_repo", "repository_changes"]
