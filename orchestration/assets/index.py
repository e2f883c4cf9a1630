"""files -> chunks -> vectors as one graph-backed multi-asset over any set of partitions.

Inside one run: a chunk step takes the first group of partitions from the run's start while
a planning op registers the repository and fans the other groups out to more chunk steps
(many at once on the multiprocess executor, or on Celery workers), and the embedding consumers
(`embedding_consumer.py`, one per GPU), which start with the run and load the model
meanwhile, embed each partition as soon as its chunks land.
Each partition's materializations are recorded the moment it lands, so a failure loses
nothing done elsewhere and "re-execute from failure" redoes only what failed. When both
sides are done, the asset checks run over the whole tables, in the same run.
"""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from indexer_core.discovery.listing import Candidates, list_candidates
from indexer_core.embedding import query_encoder
from indexer_core.embedding.model import load_encoder
from indexer_core.indexing.chunk_step import (
    ChunkReport,
    PartitionJob,
    chunk_partitions,
    smallest_first,
)
from indexer_core.indexing.embed_step import EmbedReport, embed_partition
from indexer_core.storage import registry
from indexer_core.storage import tables as storage
from indexer_core.storage.housekeeping import compact_manifest
from orchestration import config
from orchestration.checks import CHECK_SPECS, check_results
from orchestration.embedding_consumer import (
    ChunkLandings,
    EmbeddingConsumer,
    partition_claims,
    rerun_chunked_elsewhere,
)
from orchestration.metadata import (
    chunk_metadata,
    embed_metadata,
    encoder_padding,
    slice_metadata,
)
from orchestration.partitions import (
    NO_GROUP,
    first_and_rest,
    group_mapping_key,
    index_partitions,
    split_partition_key,
)
from orchestration.resources import CodeIndexResource
from orchestration.scale_out import consumer_device

EMBEDDER_TAG = "code-index/embedder"
SHARDS_TAG = "code-index/shards"
# The repository a run registers before it plans (`jobs.register_tags`): what `code-index
# index` asks for, so that the command itself never opens LanceDB to do it.
REGISTER_TAG = "code-index/register"
DATA_VERSION_TAG = "dagster/data_version"
# Sharing a core with a chunk step, the encoder's thread gets 94% of it at nice 12 (75% at
# 5): at a GPU's simulated rate, run wall / encode 1.10 against 1.135 at 5, two rounds each
# (bench/reports/pipeline_cost_ab_runs.md); on the CPU alike.
CHUNK_NICENESS = 12
_NICED = False
# Ops whose steps run in the calling process, one after another: nothing runs alongside.
_SEQUENTIAL_EXECUTORS = {"in_process", "execute_in_process_executor"}


def planned_partitions(context: dg.OpExecutionContext) -> list[str]:
    """The run's partitions: its partition range, narrowed by the shards tag when present."""
    keys = sorted(context.partition_keys)
    narrowed = context.run.tags.get(SHARDS_TAG)
    if narrowed:
        wanted = set(narrowed.split(","))
        keys = [k for k in keys if k in wanted]
    return keys


def steps_share_a_process(context: dg.OpExecutionContext) -> bool:
    """True on the in-process executor, where steps run one after another, so the consumer
    cannot wait for chunks that are only written after it returns."""
    executor = context.job_def.executor_def.name
    if executor in _SEQUENTIAL_EXECUTORS:
        return True
    chosen = (context.run.run_config.get("execution") or {}).get("config") or {}
    # Dagster's own selector (`in_process: {}`) or the index job's flag (`in_process: true`)
    in_process = chosen.get("in_process", False) is not False
    return executor == "multi_or_in_process_executor" and in_process


def registration_request(context: dg.OpExecutionContext) -> registry.Request | None:
    """The registration the run was asked to record first (`jobs.register_tags`), if any."""
    asked = context.run.tags.get(REGISTER_TAG)
    if not asked:
        return None
    return registry.Request(**json.loads(asked))


@dg.op(
    out=dg.DynamicOut(list),
    description="Registers the run's repository, checks every repository of the selected "
    "partitions, then fans all but the first group of them out to chunk steps (at most "
    "`chunk_steps` in all).",
)
def plan_partitions(context: dg.OpExecutionContext, code_index: CodeIndexResource):
    keys = planned_partitions(context)
    request = registration_request(context)
    if request is not None:
        registry.register(code_index.db_uri, request.repo, request.root, request.requested_at)
    roots = registry.repositories(code_index.db_uri)
    missing = sorted({split_partition_key(k)[0] for k in keys} - roots.keys())
    if missing:
        raise dg.Failure(
            f"repositories not registered in {code_index.db_uri}: {', '.join(missing)}"
        )
    _, rest = first_and_rest(keys, code_index.chunk_steps)
    for group in rest:
        yield dg.DynamicOutput(group, mapping_key=group_mapping_key(group))
    if not rest:  # an empty fan-out would skip the join, and with it the checks
        yield dg.DynamicOutput([], mapping_key=NO_GROUP)


@dg.op(
    description="Chunks the run's first group of partitions from the start of the run, beside "
    "the planning step, and records each shard's files and chunks as it lands."
)
def chunk_shard_first(context: dg.OpExecutionContext, code_index: CodeIndexResource) -> list:
    """The first partition lands without waiting for the planning step's process (about a
    second on a small machine), so the embedding consumer starts on it as soon as its model
    is loaded; until then the encoder has nothing to do, so this step yields it the CPU only
    from then on. The repository's root is read as it is once the planning step has
    recorded the run's registration (`registry.repositories` with the request)."""
    partitions, _ = first_and_rest(planned_partitions(context), code_index.chunk_steps)
    roots = registry.repositories(code_index.db_uri, registration_request(context))
    return _chunk_partitions(context, code_index, partitions, roots, yield_cpu_after=1)


@dg.op(
    description="Scans its shards one after another, re-chunks their changed files, and records "
    "each shard's files and chunks as it lands."
)
def chunk_shard(
    context: dg.OpExecutionContext, code_index: CodeIndexResource, partitions: list
) -> list:
    """A group of partitions the planning step fanned out (none for `NO_GROUP`)."""
    if not partitions:
        return partitions
    return _chunk_partitions(
        context, code_index, partitions, registry.repositories(code_index.db_uri)
    )


def _chunk_partitions(
    context: dg.OpExecutionContext,
    code_index: CodeIndexResource,
    partitions: list[str],
    roots: dict[str, str],
    yield_cpu_after: int = 0,
) -> list[str]:
    """Several partitions per step when a run has more than `chunk_steps`: a process launch
    costs more than a small shard's parsing. Each partition is recorded the moment it lands;
    one that fails does not stop the others, and the step then fails naming it.

    The step yields the CPU to the embedding consumer (`CHUNK_NICENESS`) once
    `yield_cpu_after` of its partitions have landed: where cores are short, the encoder (or
    the host side of a GPU: tokenizing, copying) is the pipeline's bottleneck, and chunking
    only has to stay ahead of it."""
    yield_cpu = not steps_share_a_process(context)
    if yield_cpu and not yield_cpu_after:
        _yield_cpu_to_the_encoder()
    failed, reports = [], []
    jobs: list[PartitionJob] = []
    keys: dict[tuple[str, int], str] = {}  # each job's partition key
    listings: dict[str, Candidates] = {}  # each repository listed once per step
    for partition_key in partitions:
        try:
            jobs.append(_job(code_index, partition_key, roots, listings))
            keys[jobs[-1].repo, jobs[-1].shard] = partition_key
        except Exception as exc:  # noqa: BLE001 - the others still land; the step fails below
            failed.append(f"{partition_key}: {type(exc).__name__}: {exc}")
            context.log.error(f"chunking failed for {failed[-1]}")
    outcomes = chunk_partitions(
        code_index.db_uri,
        smallest_first(jobs, code_index.settings().shards),
        code_index.settings(),
        rehash=code_index.rehash,
        db=storage.kept_connection(code_index.db_uri),  # across the step's partitions
    )
    for job, outcome in outcomes:  # each as its writes commit, in order
        partition_key = keys[job.repo, job.shard]
        if isinstance(outcome, Exception):
            failed.append(f"{partition_key}: {type(outcome).__name__}: {outcome}")
            context.log.error(f"chunking failed for {failed[-1]}")
        else:
            reports.append(_record_chunks(context, code_index, partition_key, outcome))
        if yield_cpu and len(reports) + len(failed) >= yield_cpu_after:
            _yield_cpu_to_the_encoder()
    if reports:
        context.log.info(_chunk_summary(reports))
    if failed:
        landed = len(partitions) - len(failed)
        raise dg.Failure(
            f"chunking failed for {'; '.join(failed)} ({landed} other shard(s) of this step landed)"
        )
    return partitions


def _yield_cpu_to_the_encoder() -> None:
    """Lower this step process's CPU priority by CHUNK_NICENESS, once (a worker process that
    runs several chunk steps, as Celery's do, is lowered only once)."""
    global _NICED
    if not _NICED and hasattr(os, "nice"):
        try:
            os.nice(CHUNK_NICENESS)
        except OSError:
            pass  # not permitted here: chunk at the same priority
        _NICED = True


def _job(
    code_index: CodeIndexResource,
    partition_key: str,
    roots: dict[str, str],
    listings: dict[str, Candidates],
) -> PartitionJob:
    """What chunking a partition needs: its repository's root, listed once per step."""
    repo, shard = split_partition_key(partition_key)
    root = registry.root_of(code_index.db_uri, repo, roots)
    if root not in listings:
        listings[root] = list_candidates(root, code_index.settings().discovery())
    return PartitionJob(repo, root, shard, listings[root])


def _record_chunks(
    context, code_index: CodeIndexResource, partition_key: str, report: ChunkReport
) -> ChunkReport:
    """Record a partition's `files` and `chunks` materializations, whose metadata is the
    partition's report (one log line per step, not per partition: every line is one more
    event written to the instance)."""
    metadata = chunk_metadata(report, code_index.db_uri)
    tags = {DATA_VERSION_TAG: report.data_version}
    files_metadata = {
        "files": report.files,
        "skipped_files": len(report.skipped),
        "skipped": metadata["skipped"],
        "data_version": report.data_version,
    }
    context.log_event(
        dg.AssetMaterialization(
            "files", partition=partition_key, metadata=files_metadata, tags=tags
        )
    )
    context.log_event(
        dg.AssetMaterialization("chunks", partition=partition_key, metadata=metadata, tags=tags)
    )
    return report


def _total(reports: list, name: str) -> float:
    return sum(getattr(report, name) for report in reports)


def _chunk_summary(reports: list[ChunkReport]) -> str:
    def total(name: str) -> int:
        return int(_total(reports, name))

    return (
        f"{len(reports)} partition(s) chunked: {total('parsed')} files parsed, "
        f"{total('unchanged')} unchanged, {total('deleted')} deleted, "
        f"{sum(len(r.skipped) for r in reports)} skipped, "
        f"+{total('chunks_added')}/-{total('chunks_removed')} chunks in "
        f"{_total(reports, 'seconds'):.1f}s"
    )


def consumer_op_name(index: int) -> str:
    """`embed_as_chunks_land`, then `embed_as_chunks_land_2`, ... (the k8s profile's per-step
    config is keyed by these names)."""
    return "embed_as_chunks_land" if index == 0 else f"embed_as_chunks_land_{index + 1}"


def embedding_consumer_op(index: int = 0, count: int = 1) -> dg.OpDefinition:
    """Consumer `index` of `count` (`CODE_INDEX_EMBED_CONSUMERS`): the first keeps the name
    `embed_as_chunks_land`; with several, they share the run's partitions through claims
    (`embedding_consumer.py`) and go to the Celery queue `CODE_INDEX_GPU_QUEUE`."""
    settings = config.load()

    @dg.op(
        name=consumer_op_name(index),
        out={"vectors": dg.Out(is_required=False), "embedded": dg.Out(dg.Nothing)},
        tags={
            EMBEDDER_TAG: "1",
            "dagster/priority": "10",
            "dagster-celery/priority": "10",
            "dagster-celery/queue": settings.gpu_queue,
        },
        description="Loads the model at the start of the run and embeds each partition as "
        "soon as its chunks land.",
    )
    def consumer(context: dg.OpExecutionContext, code_index: CodeIndexResource):
        yield from _consume(context, code_index, index, count)

    return consumer


def _consume(context: dg.OpExecutionContext, code_index: CodeIndexResource, index: int, count: int):
    if steps_share_a_process(context):
        context.log.info("in-process executor: partitions are embedded by check_tables")
        yield dg.Output(None, output_name="embedded")
        return
    partitions = planned_partitions(context)
    started = time.perf_counter()
    embedder = _load_embedder(code_index, index)
    context.log.info(
        f"model {embedder.model_name} on {embedder.device}, batch {embedder.batch_size}, "
        f"ready in {time.perf_counter() - started:.1f}s (consumer {index + 1} of {count})"
    )
    first = (chunk_shard_first.name, first_and_rest(partitions, code_index.chunk_steps)[0])
    landings = ChunkLandings(
        context.instance,
        context.run_id,
        partitions,
        chunk_op=chunk_shard.name,
        plan_op=plan_partitions.name,
        first=first,
        already_chunked=rerun_chunked_elsewhere(context.run, partitions, chunk_shard.name, first),
    )
    reports: list[EmbedReport] = []

    def record(key: str, report: EmbedReport) -> None:
        _record(context, code_index, key, report)
        reports.append(report)

    consumer = EmbeddingConsumer(
        code_index.db_uri,
        embedder,
        record,
        claim=partition_claims(code_index.db_uri) if count > 1 else None,
        consumers=count,
        observe=lambda key, index, slices, report: _observe_slice(
            context, code_index, key, index, slices, report
        ),
    )
    outcome = consumer.run(landings)
    consumer.close()
    if reports:
        context.log.info(_embed_summary(reports))
    padding = encoder_padding(embedder)
    if index == 0:
        _export_for_queries(context, embedder, code_index)
    if outcome.aborted or outcome.failed_chunking:
        # A failure, not a warning: "re-execute from failure" then runs this step again too,
        # and it embeds what the re-executed chunk steps land.
        raise dg.Failure(
            f"{outcome.aborted or 'chunking failed'}: {len(outcome.failed_chunking)} "
            f"partition(s) not chunked: {', '.join(sorted(outcome.failed_chunking))}; those "
            "that landed are embedded and recorded. Re-execute from failure to redo only these."
        )
    yield dg.Output(None, output_name="embedded", metadata=padding)


_CONSUMERS = config.load().embed_consumers  # read when the code location loads, like shards
consumer_ops = [embedding_consumer_op(i, _CONSUMERS) for i in range(_CONSUMERS)]
embed_as_chunks_land = consumer_ops[0]


@dg.op(
    ins={"first": dg.In(list), "groups": dg.In(list), "embedded": dg.In(dg.Nothing)},
    out={
        "files": dg.Out(is_required=False),
        "chunks": dg.Out(is_required=False),
        **{spec.get_python_identifier(): dg.Out(is_required=True) for spec in CHECK_SPECS},
    },
    description="Joins the chunk steps and the embedding consumers, merges the `files` "
    "manifest's fragments, then runs the integrity checks over the whole tables.",
)
def check_tables(
    context: dg.OpExecutionContext, code_index: CodeIndexResource, first: list, groups: list
):
    """The run's one join: the chunk steps' and consumers' materializations were already
    recorded one by one. One step, not a join step then a check step: on Celery each
    dependency level costs the executor's 1 s poll plus a task's start.

    It merges the `files` manifest's per-shard fragments, so the next sensor tick reads it
    fast, in a thread beside the checks (which read only `chunks` and `vectors`). On the
    in-process executor, where the consumer cannot wait for chunks, the embedding happens
    here, after all chunking, before the checks.
    """
    keys = sorted([*first, *(key for group in groups for key in group)])
    context.log.info(f"{len(keys)} partitions chunked")
    with ThreadPoolExecutor(1, thread_name_prefix="manifest-compaction") as pool:
        compaction = pool.submit(compact_manifest, code_index.db_uri)
        if steps_share_a_process(context):
            embedder = _load_embedder(code_index)
            for key in keys:
                repo, shard = split_partition_key(key)
                report = embed_partition(code_index.db_uri, repo, shard, embedder)
                _record(context, code_index, key, report)
            _export_for_queries(context, embedder, code_index)
        results = list(check_results(code_index))
    compacted = compaction.result()
    if compacted is not None:
        context.log.info(
            f"files manifest compacted: {compacted.fragments_before} fragments into "
            f"{compacted.fragments_after} in {compacted.seconds:.2f}s"
        )
    yield from results


def _load_embedder(code_index: CodeIndexResource, index: int = 0):
    return load_encoder(
        code_index.model,
        consumer_device(code_index.device, index),
        code_index.batch_size,
        code_index.tokenizer_threads,
        onnx=code_index.query_options(),
    )


def _export_for_queries(context: dg.OpExecutionContext, embedder, code_index) -> None:
    """Leave the model's ONNX export for searches (`query_encoder.py`), once per machine and
    model, so the first search after an index run starts without torch. CPU models only."""
    started = time.perf_counter()
    options = code_index.query_options()
    try:
        target = query_encoder.export_target(embedder.model_name, options)
        if target is None or target[1].is_file():
            return
        path = query_encoder.export_for_queries(embedder, options=options)
    except Exception as exc:  # noqa: BLE001 - searches keep the torch path; the index is done
        context.log.warning(f"no ONNX export of the model for queries: {type(exc).__name__}: {exc}")
        return
    if path is not None:
        context.log.info(
            f"exported the model for queries in {time.perf_counter() - started:.1f}s: {path}"
        )


def _record(context, code_index: CodeIndexResource, key: str, report: EmbedReport) -> None:
    context.log_event(
        dg.AssetMaterialization(
            "vectors", partition=key, metadata=embed_metadata(report, code_index.db_uri)
        )
    )


def _embed_summary(reports: list[EmbedReport]) -> str:
    embedded, reused, unchanged, seconds = (
        _total(reports, name) for name in ("embedded", "reused", "unchanged", "embed_seconds")
    )
    return (
        f"{len(reports)} partition(s) embedded: {embedded:.0f} chunks embedded, "
        f"{reused:.0f} from cache, {unchanged:.0f} unchanged; encoding {seconds:.1f}s"
    )


def _observe_slice(
    context, code_index: CodeIndexResource, key: str, index: int, count: int, report: EmbedReport
) -> None:
    """A slice of a large partition is written: an observation, so every consumer learns it;
    the partition's materialization follows once all its slices are written."""
    context.log_event(
        dg.AssetObservation(
            "vectors",
            partition=key,
            metadata=slice_metadata(report, code_index.db_uri, index, count),
        )
    )


@dg.graph(
    out={
        "files": dg.GraphOut(),
        "chunks": dg.GraphOut(),
        "vectors": dg.GraphOut(),
        **{spec.get_python_identifier(): dg.GraphOut() for spec in CHECK_SPECS},
    }
)
def code_index_graph():
    first = chunk_shard_first()
    groups = plan_partitions().map(chunk_shard).collect()
    vectors, embedded = embed_as_chunks_land()
    more = [op()[1] for op in consumer_ops[1:]]  # their `vectors` are events, not outputs
    joined = check_tables(first=first, groups=groups, embedded=[embedded, *more])._asdict()
    return {"vectors": vectors, **joined}


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
        "files": "The manifest (LanceDB `files`): every file of the shard, indexed or skipped "
        "with its reason, and its content hash.",
        "chunks": "Semantic code chunks (LanceDB `chunks`): tree-sitter units within the "
        "model's token limit, with hierarchy.",
        "vectors": "One embedding per chunk (LanceDB `vectors`), from the configured "
        "sentence-transformers model.",
    },
    tags_by_output_name=_KINDS,
    check_specs=CHECK_SPECS,
)
