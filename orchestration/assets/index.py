"""files -> chunks -> vectors as one graph-backed multi-asset over any set of partitions.

Inside one run: a planning op fans out one chunk step per partition (multiprocess executor,
many at once), and one long-lived embedding consumer, which loads the model once, takes each
partition's chunks as soon as its step succeeds and embeds them while later partitions are
still being chunked. Each partition's materialization is recorded the moment it lands, so a
failure loses nothing done elsewhere and "re-execute from failure" redoes only what failed.
"""

import os
import re
import time
from concurrent.futures import Future

import dagster as dg

from indexer_core.embedding import query_encoder
from indexer_core.embedding.model import load_embedder
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.embed_worker import EmbeddingWorker
from indexer_core.storage import registry
from indexer_core.storage.housekeeping import compact_manifest
from orchestration.metadata import chunk_metadata, embed_metadata
from orchestration.partitions import index_partitions, split_partition_key
from orchestration.resources import CodeIndexResource

EMBEDDER_TAG = "code-index/embedder"
SHARDS_TAG = "code-index/shards"
DATA_VERSION_TAG = "dagster/data_version"
_POLL_SECONDS = 0.5


def _mapping_key(index: int, partition_key: str) -> str:
    return f"p{index:04d}_" + re.sub(r"[^A-Za-z0-9_]", "_", partition_key)[:80]


@dg.op(
    out={"partitions": dg.DynamicOut(str), "plan": dg.Out(list)},
    description="Checks every repository of the selected partitions, then fans out one step each.",
)
def plan_partitions(context: dg.OpExecutionContext, code_index: CodeIndexResource):
    keys = sorted(context.partition_keys)
    narrowed = context.run.tags.get(SHARDS_TAG)
    if narrowed:
        wanted = set(narrowed.split(","))
        keys = [k for k in keys if k in wanted]
    roots = registry.repositories(code_index.db_uri)
    missing = sorted({split_partition_key(k)[0] for k in keys} - roots.keys())
    if missing:
        raise dg.Failure(
            f"repositories not registered in {code_index.db_uri}: {', '.join(missing)}"
        )
    plan = [(key, _mapping_key(i, key)) for i, key in enumerate(keys)]
    yield dg.Output(plan, output_name="plan")
    for key, mapping_key in plan:
        yield dg.DynamicOutput(key, mapping_key=mapping_key, output_name="partitions")


@dg.op(description="Scans one shard, re-chunks its changed files, records files and chunks.")
def chunk_shard(
    context: dg.OpExecutionContext, code_index: CodeIndexResource, partition_key: str
) -> str:
    repo, shard = split_partition_key(partition_key)
    root = registry.root_of(code_index.db_uri, repo)
    report = chunk_partition(
        code_index.db_uri, repo, root, shard, code_index.settings(), rehash=code_index.rehash
    )
    metadata = chunk_metadata(report, code_index.db_uri)
    tags = {DATA_VERSION_TAG: report.data_version}
    context.log_event(
        dg.AssetMaterialization(
            "files",
            partition=partition_key,
            metadata={
                "files": report.files,
                "skipped_files": len(report.skipped),
                "skipped": metadata["skipped"],
                "data_version": report.data_version,
            },
            tags=tags,
        )
    )
    context.log_event(
        dg.AssetMaterialization("chunks", partition=partition_key, metadata=metadata, tags=tags)
    )
    context.log.info(
        f"{partition_key}: {report.parsed} parsed, {report.unchanged} unchanged, {report.deleted} deleted, "
        f"{len(report.skipped)} skipped, +{report.chunks_added}/-{report.chunks_removed} chunks in {report.seconds:.1f}s"
    )
    return partition_key


@dg.op(out={"files": dg.Out(is_required=False), "chunks": dg.Out(is_required=False)})
def chunks_done(context: dg.OpExecutionContext, code_index: CodeIndexResource, keys: list[str]):
    """Joins the chunk steps; their materializations were already recorded one by one.

    Then it merges the `files` manifest's per-shard fragments, so the next sensor tick reads it fast.

    On the in-process executor steps run one at a time, so the consumer cannot wait for
    chunks; there the embedding happens here, after all chunking.
    """
    context.log.info(f"{len(keys)} partitions chunked")
    compacted = compact_manifest(code_index.db_uri)
    if compacted is not None:
        context.log.info(
            f"files manifest compacted: {compacted.fragments_before} fragments into "
            f"{compacted.fragments_after} in {compacted.seconds:.2f}s"
        )
    if _sequential(context):
        embedder = load_embedder(code_index.model, code_index.device, code_index.batch_size)
        for key in keys:
            repo, shard = split_partition_key(key)
            _record(
                context, code_index, key, embed_partition(code_index.db_uri, repo, shard, embedder)
            )
    return
    yield  # a generator that emits no outputs: the records came from chunk_shard


@dg.op(
    out={"vectors": dg.Out(is_required=False)},
    tags={EMBEDDER_TAG: "1", "dagster/priority": "10"},
    description="Loads the model once and embeds each partition as soon as its chunks land.",
)
def embed_as_chunks_land(context: dg.OpExecutionContext, code_index: CodeIndexResource, plan: list):
    if _sequential(context):
        context.log.info(
            "in-process executor: partitions are embedded after chunking, by chunks_done"
        )
        return
    embedder = load_embedder(code_index.model, code_index.device, code_index.batch_size)
    context.log.info(
        f"model {embedder.model_name} on {embedder.device}, batch {embedder.batch_size}"
    )
    prefix = context.get_step_execution_context().step.handle.to_key().rpartition(".")[0]
    chunk_step = f"{prefix}.chunk_shard" if prefix else "chunk_shard"
    pending = {f"{chunk_step}[{mapping_key}]": key for key, mapping_key in plan}
    run = context.instance.get_run_by_id(context.run_id)
    rerun_steps = (
        set(run.step_keys_to_execute)
        if run and run.parent_run_id and run.step_keys_to_execute
        else None
    )
    ready: list[str] = []
    failed: list[str] = []
    if rerun_steps is not None:  # re-execution: partitions not rerun were chunked by the parent run
        for step_key in [s for s in pending if s not in rerun_steps]:
            ready.append(pending.pop(step_key))
    cursor = None
    worker = EmbeddingWorker(code_index.db_uri, embedder)
    queued: list[tuple[str, Future]] = []  # partitions handed to the worker, in order
    finished = False
    try:
        while pending or ready or queued:
            for key in ready:
                queued.append((key, worker.submit(*split_partition_key(key))))
            ready.clear()
            _record_written(context, code_index, queued, wait=not pending)
            if pending:
                cursor = _collect_finished_steps(context, cursor, pending, ready, failed)
                if not ready:
                    time.sleep(_POLL_SECONDS)
        finished = True
    finally:
        worker.close(cancel=not finished)
    _export_for_queries(context, embedder)
    if failed:
        raise dg.Failure(
            f"chunking failed for {len(failed)} partition(s): {', '.join(sorted(failed))}; "
            "the others are embedded and recorded. Re-execute from failure to redo only these."
        )
    return
    yield


def _export_for_queries(context: dg.OpExecutionContext, embedder) -> None:
    """Leave the model's ONNX export for searches (`query_encoder.py`), once per machine and
    model, so the first search after an index run starts without torch. CPU models only."""
    started = time.perf_counter()
    try:
        target = query_encoder.export_target(embedder.model_name)
        if target is None or target[1].is_file():
            return
        path = query_encoder.export_for_queries(embedder)
    except Exception as exc:  # noqa: BLE001 - searches keep the torch path; the index is done
        context.log.warning(f"no ONNX export of the model for queries: {type(exc).__name__}: {exc}")
        return
    if path is not None:
        context.log.info(
            f"exported the model for queries in {time.perf_counter() - started:.1f}s: {path}"
        )


def _sequential(context: dg.OpExecutionContext) -> bool:
    """True when steps share this process (in-process executor): then nothing runs alongside.

    The planning step always ran earlier in the same run; the multiprocess executor (and any
    distributed one) gives each step its own process, the in-process executor does not.
    """
    prefix = context.get_step_execution_context().step.handle.to_key().rpartition(".")[0]
    plan_step = f"{prefix}.plan_partitions" if prefix else "plan_partitions"
    for entry in context.instance.all_logs(context.run_id, of_type=dg.DagsterEventType.STEP_START):
        if entry.step_key == plan_step:
            return entry.dagster_event.pid == os.getpid()
    return False


def _record_written(context, code_index: CodeIndexResource, queued: list, wait: bool) -> None:
    """Record each partition whose vectors are written, in order, as soon as they are.

    A failed partition raises here and fails the step; partitions recorded before it stay."""
    while queued and (wait or queued[0][1].done()):
        key, future = queued.pop(0)
        _record(context, code_index, key, future.result())


def _record(context, code_index: CodeIndexResource, key: str, report) -> None:
    context.log_event(
        dg.AssetMaterialization(
            "vectors", partition=key, metadata=embed_metadata(report, code_index.db_uri)
        )
    )
    context.log.info(
        f"{key}: {report.embedded} embedded, {report.reused} from cache, {report.unchanged} unchanged"
    )


def _collect_finished_steps(
    context, cursor, pending: dict[str, str], ready: list[str], failed: list[str]
):
    """Moves chunk steps that succeeded (or failed) since `cursor` out of `pending`."""
    event_types = {
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_SKIPPED,
    }
    while True:
        conn = context.instance.get_records_for_run(
            run_id=context.run_id, cursor=cursor, of_type=event_types, limit=1000
        )
        for record in conn.records:
            event = record.event_log_entry.dagster_event
            step_key = event.step_key if event else None
            if step_key not in pending:
                continue
            key = pending.pop(step_key)
            (ready if event.event_type == dg.DagsterEventType.STEP_SUCCESS else failed).append(key)
        cursor = conn.cursor
        if not conn.has_more:
            return cursor


@dg.graph(out={"files": dg.GraphOut(), "chunks": dg.GraphOut(), "vectors": dg.GraphOut()})
def code_index_graph():
    partitions, plan = plan_partitions()
    files, chunks = chunks_done(partitions.map(chunk_shard).collect())
    vectors = embed_as_chunks_land(plan)
    return {"files": files, "chunks": chunks, "vectors": vectors}


_KINDS = {
    "files": {"dagster/kind/lancedb": "", "dagster/kind/git": ""},
    "chunks": {"dagster/kind/lancedb": "", "dagster/kind/tree-sitter": ""},
    "vectors": {"dagster/kind/lancedb": "", "dagster/kind/torch": ""},
}

code_index_assets = dg.AssetsDefinition.from_graph(
    code_index_graph,
    keys_by_output_name={name: dg.AssetKey(name) for name in ("files", "chunks", "vectors")},
    internal_asset_deps={
        "files": set(),
        "chunks": {dg.AssetKey("files")},
        "vectors": {dg.AssetKey("chunks")},
    },
    partitions_def=index_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="code_index",
    descriptions_by_output_name={
        "files": "The manifest (LanceDB `files`): every file of the shard, indexed or skipped with its reason, and its content hash.",
        "chunks": "Semantic code chunks (LanceDB `chunks`): tree-sitter units within the model's token limit, with hierarchy.",
        "vectors": "One embedding per chunk (LanceDB `vectors`), from the configured sentence-transformers model.",
    },
    tags_by_output_name=_KINDS,
)
