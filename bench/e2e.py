"""End to end: the Dagster job through `orchestration.runner` on a copy of a corpus slice.

Measured in the same run: wall time; the process tree's peak memory (sampled from /proc);
the event-log timeline and overlap; then, as limits, the model's bare `encode` of exactly
the texts that were embedded (`embed_text` of the chunks table, each distinct text once,
as `embed_partition` embeds them) and a bare tree-sitter parse of the slice on all cores.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench import chunking, corpora
from bench.corpora import Corpus
from bench.memory import TreeSampler
from indexer_core.embedding.model_location import DEFAULT_MODEL


def configure(workdir: Path, workers: int, shards: int) -> None:
    """Environment read by `orchestration` at import: set before it is imported."""
    os.environ["CODE_INDEX_HOME"] = str(workdir)
    os.environ["CODE_INDEX_SHARDS"] = str(shards)
    os.environ["CODE_INDEX_MAX_CONCURRENT"] = str(workers + 1)  # + the embedding worker
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run(
    corpus: Corpus,
    workdir: Path,
    workers: int,
    shards: int,
    max_mb: float | None = None,
    fraction: float = 1.0,
    limits: bool = True,
    model: str = DEFAULT_MODEL,
    picture: Path | None = None,
) -> dict[str, object]:
    files = corpora.take(
        corpus.files(), max_bytes=int(max_mb * 1e6) if max_mb else None, fraction=fraction
    )
    workdir.mkdir(parents=True, exist_ok=True)
    root = corpora.materialize(corpus, files, workdir / "repo")
    db_uri = str(workdir / "lancedb")
    home = workdir / "dagster_home"
    for path in (Path(db_uri), home):
        shutil.rmtree(path, ignore_errors=True)
    configure(workdir, workers, shards)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["CODE_INDEX_MODEL"] = model

    import dagster as dg

    from bench.events import overlap, read_timeline
    from orchestration.runner import index_repository

    with TreeSampler() as memory:
        start = time.perf_counter()
        outcome = index_repository(str(root), db_uri=db_uri, name="bench")
        wall = time.perf_counter() - start
    result: dict[str, object] = {
        "files": len(files),
        "mb": round(sum(f.size for f in files) / 1e6, 2),
        "fraction": fraction,
        "workers": workers,
        "shards": shards,
        "run_id": outcome.run_id,
        "success": outcome.success,
        "failures": outcome.failures,
        "wall_seconds": round(wall, 3),
    }
    with dg.DagsterInstance.get() as instance:
        timeline = read_timeline(instance, outcome.run_id)
        result["overlap"] = overlap(timeline)
        result["timeline"] = timeline.to_dict()
        for peak in memory.peaks.values():
            if peak.pid in timeline.step_pids:
                peak.label = timeline.step_pids[peak.pid]
        if peak := memory.peaks.get(os.getpid()):
            peak.label = "bench + run orchestrator (this process)"
        result["memory"] = memory.summary()
        if picture is not None:
            from bench.timeline import draw

            title = (
                f"{corpus.name}: {result['mb']} MB, {shards} partitions, "
                f"{workers} chunk workers, wall {wall:.1f}s"
            )
            draw(timeline, picture, title)
            result["timeline_png"] = str(picture)
            _attach(instance, outcome.run_id, picture, result)
    result["chunks"], texts = _embedded_texts(db_uri)
    if limits:
        result["limits"] = _limits(str(root), [f.path for f in files], texts, model, wall)
    return result


def _embedded_texts(db_uri: str) -> tuple[int, list[str]]:
    from indexer_core.storage import tables as storage

    db = storage.connect(db_uri)
    table = db.open_table(storage.CHUNKS).to_arrow().select(["content_hash", "embed_text"])
    unique: dict[str, str] = {}
    for h, text in zip(
        table.column("content_hash").to_pylist(), table.column("embed_text").to_pylist()
    ):
        unique.setdefault(h, text)
    return table.num_rows, list(unique.values())


def _limits(
    root: str, paths: list[str], texts: list[str], model: str, wall: float
) -> dict[str, object]:
    """Limits measured on exactly the texts the run embedded: our encoder as the pipeline
    loads it (`load_encoder`; the ratio that counts), and the model's own encode beside it."""
    from bench.embedding import bare_encode, own_encode
    from indexer_core.chunking.tokens import load_token_counter
    from indexer_core.embedding.model import load_embedder, load_encoder
    from indexer_core.embedding.query_encoder import QueryEncoderOptions

    workers = os.cpu_count() or 1
    parse = chunking.parse_corpus(root, chunking.largest_first(root, paths), workers)
    device = os.environ.get("CODE_INDEX_DEVICE", "auto")
    embedder = load_embedder(model, device, 0)
    ours = load_encoder(model, device, 0, onnx=QueryEncoderOptions())
    embedder.encode(texts[: embedder.batch_size])  # warm-up
    ours.encode(texts[: ours.batch_size])
    encode_s = bare_encode(embedder, texts)
    own_s = own_encode(ours, texts)
    tokens = sum(load_token_counter(model).count_many(texts))
    bound = max(parse["wall_seconds"], own_s)
    return {
        "embedded_texts": len(texts),
        "embedded_tokens": tokens,
        "device": embedder.device,
        "batch_size": embedder.batch_size,
        "our_encoder": f"{type(ours).__name__} on {ours.device}, batch {ours.batch_size}",
        "our_encode_seconds": round(own_s, 3),
        "our_encode_tokens_per_second": round(tokens / own_s) if own_s else None,
        "models_own_encode_seconds": round(encode_s, 3),
        "tokenizer_threads": getattr(ours, "tokenizer_threads", 0),
        "bare_parse_all_cores_seconds": parse["wall_seconds"],
        "parse_workers": workers,
        "wall_over_our_encode": round(wall / own_s, 3) if own_s else None,
        "wall_over_max_parse_our_encode": round(wall / bound, 3) if bound else None,
        "wall_over_models_own_encode": round(wall / encode_s, 3) if encode_s else None,
    }


def _attach(instance, run_id: str, picture: Path, result: dict[str, object]) -> None:
    """Record the picture in Dagster as an observation of `vectors` (shown in the asset's
    events)."""
    import dagster as dg

    try:
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key="vectors",
                metadata={
                    "bench_timeline": dg.MetadataValue.path(str(picture)),
                    "bench_run_id": run_id,
                    "bench_wall_seconds": result["wall_seconds"],
                    "share_of_embedding_during_chunking": result["overlap"].get(
                        "share_of_embedding_during_chunking"
                    ),
                },
            )
        )
        result["attached_to_dagster"] = True
    except Exception as exc:  # noqa: BLE001 - optional: the PNG and JSON are the record
        result["attached_to_dagster"] = f"failed: {exc}"
