"""Embedding: the production path (`embed_partition` on a LanceDB partition) against the
model's bare `encode` on the same texts with the same batch size, in the same process."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.corpora import Corpus, stable_order
from indexer_core.chunking.files import chunk_file, chunks_to_arrow
from indexer_core.chunking.tokens import load_token_counter
from indexer_core.embedding.model import load_embedder
from indexer_core.embedding.model_location import DEFAULT_MODEL
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.records import Chunk, SkippedFile
from indexer_core.storage import tables as storage


def sample_chunks(corpus: Corpus, limit: int, model: str = DEFAULT_MODEL) -> list[Chunk]:
    """The chunks of files taken in stable order until `limit` distinct texts are reached."""
    counter = load_token_counter(model)
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for entry in stable_order(corpus.files()):
        outcome = chunk_file(str(corpus.root), "bench", entry.path, 0, counter)
        if isinstance(outcome, SkippedFile):
            continue
        for chunk in outcome.chunks:
            if chunk.content_hash not in seen and len(seen) < limit:
                seen.add(chunk.content_hash)
                chunks.append(chunk)
        if len(seen) >= limit:
            break
    return chunks


def bare_encode(embedder, texts: list[str]) -> float:
    """Seconds for the model's own encode of `texts`, batch size as the embedder's."""
    start = time.perf_counter()
    embedder.model.encode(
        texts,
        batch_size=embedder.batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    _sync(embedder)
    return time.perf_counter() - start


def own_encode(embedder, texts: list[str]) -> float:
    """Seconds for `Embedder.encode` of `texts`: on CUDA it tokenizes on threads ahead of the
    device (indexer_core/embedding.py), which the model's own encode does not."""
    start = time.perf_counter()
    embedder.encode(texts)
    _sync(embedder)
    return time.perf_counter() - start


def _sync(embedder) -> None:
    if embedder.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def vectors_agree(embedder, texts: list[str]) -> float:
    """The smallest cosine between our encoder's vectors (`Embedder.encode`: tokenizer
    threads, length batches, fp16 on CUDA) and the model's own encode of the same texts."""
    import numpy as np

    ours = embedder.encode(texts)
    own = embedder.model.encode(
        texts,
        batch_size=embedder.batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return round(float(np.min(np.sum(ours * own, axis=1))), 6) if len(texts) else 1.0


def run(
    corpus: Corpus,
    limit: int,
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    batch_size: int = 0,
) -> dict[str, object]:
    chunks = sample_chunks(corpus, limit, model)
    texts = [c.embed_text for c in chunks]
    counter = load_token_counter(model)
    tokens = sum(counter.count_many(texts)) + 2 * len(texts)
    load_start = time.perf_counter()
    embedder = load_embedder(model, device, batch_size)
    load_s = time.perf_counter() - load_start
    embedder.encode(texts[: min(len(texts), embedder.batch_size)])  # warm-up (kernels, allocator)
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        db_uri = str(Path(tmp) / "db")
        table = storage.open_or_create(
            storage.connect(db_uri), storage.CHUNKS, storage.CHUNKS_SCHEMA
        )
        storage.replace_rows(table, "chunk_id", chunks_to_arrow(chunks), None)
        bare_s = bare_encode(embedder, texts)
        start = time.perf_counter()
        report = embed_partition(db_uri, "bench", 0, embedder)
        _sync(embedder)
        path_s = time.perf_counter() - start
        bare2_s = bare_encode(embedder, texts)  # again after, to see drift (thermal, load)
        own_s = own_encode(embedder, texts) if embedder.tokenizer_threads else bare_s
    agreement = vectors_agree(embedder, texts[:2000])
    bare_best = min(bare_s, bare2_s)
    n = len(texts)
    return {
        "model": model,
        "device": embedder.device,
        "batch_size": embedder.batch_size,
        "texts": n,
        "tokens": tokens,
        "mean_tokens": round(tokens / n, 1) if n else 0,
        "model_load_seconds": round(load_s, 2),
        "bare_encode_seconds": [round(bare_s, 3), round(bare2_s, 3)],
        "own_encode_seconds": round(own_s, 3),
        "tokenizer_threads": embedder.tokenizer_threads,
        "embed_partition_seconds": round(path_s, 3),
        "embed_partition_model_seconds": round(report.embed_seconds, 3),
        "embedded": report.embedded,
        "min_cosine_ours_vs_models_own": agreement,
        "summary": {
            "our_tokens_per_s": round(tokens / own_s, 1) if own_s else None,
            "min_cosine_ours_vs_models_own": agreement,
            "bare_chunks_per_s": round(n / bare_best, 1),
            "bare_tokens_per_s": round(tokens / bare_best, 1),
            "path_chunks_per_s": round(n / path_s, 1),
            "path_tokens_per_s": round(tokens / path_s, 1),
            "path_over_bare_time": round(path_s / bare_best, 3),
            "own_encode_over_bare_time": round(own_s / bare_best, 3),
            "device": embedder.device,
            "batch_size": embedder.batch_size,
            "texts": n,
        },
    }
