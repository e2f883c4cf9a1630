"""Queries embedded on ONNX Runtime give the model's own vectors, and spare a search process
the torch import.

The export is real (torch's exporter on the packaged model) into this session's cache
directory (`onnx_cache` in conftest), and so is the search index the results come from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer_core.embedding import query_encoder
from indexer_core.embedding.model_location import resolve_model_path
from indexer_core.search.query import load_query_encoder, query_embedder, search
from tests.conftest import MODEL
from tests.core.search_corpus import build_index

TEXTS = [
    "compute the checksum of a payload",
    "HttpClient.sendAll",
    "",
    "x",
    (
        "def parse_header(line):\n    name, _, value = line.partition(':')\n"
        "    return name.strip(), value.strip()"
    ),
    "déjà vu: ünïcödé 🙂 名前 " * 60,  # far over the model's 256 tokens: truncated alike
]


@pytest.fixture(scope="module")
def exported(embedder) -> Path:
    path = query_encoder.export_for_queries(embedder, MODEL)
    assert path is not None and path.is_file()
    return path


def test_the_packaged_models_layout() -> None:
    layout = query_encoder.model_layout(resolve_model_path(MODEL))
    assert layout is not None
    assert (layout.pooling, layout.normalize, layout.dim, layout.max_tokens) == (
        "mean",
        True,
        384,
        256,
    )


def test_onnx_vectors_equal_the_models_own(embedder, exported: Path) -> None:
    encoder = query_encoder.load_onnx_query_encoder(MODEL)
    assert isinstance(encoder, query_encoder.OnnxEncoder)
    assert encoder.dim == embedder.dim and encoder.model_name == MODEL
    np.testing.assert_allclose(encoder.encode(TEXTS), embedder.encode(TEXTS), atol=1e-5)
    np.testing.assert_allclose(
        encoder.encode_query(TEXTS[0]), embedder.encode_query(TEXTS[0]), atol=1e-5
    )


def test_indexing_on_the_cpu_takes_the_export_in_batches(embedder, exported: Path) -> None:
    """`load_encoder` on the CPU: the export with a batch running on every core at once,
    length-sorted padded batches that give the model's own vectors in the callers' order
    whatever the batching; with ONNX off, or on a GPU, the model itself."""
    import os

    from indexer_core.embedding.model import load_encoder

    encoder = load_encoder(MODEL, "cpu", 3, onnx=query_encoder.QueryEncoderOptions())
    assert isinstance(encoder, query_encoder.OnnxEncoder) and encoder.batch_size == 3
    assert encoder.workers == (os.cpu_count() or 1)
    texts = TEXTS * 3 + [f"def f{i}(x):\n    return x * {i}" for i in range(9)]
    vectors = encoder.encode(texts)
    np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-5)
    one_by_one = query_encoder.load_onnx_encoder(MODEL, batch_size=1, workers=3)
    np.testing.assert_allclose(one_by_one.encode(texts), vectors, atol=1e-5)
    assert load_encoder(MODEL, "cpu", onnx=query_encoder.QueryEncoderOptions()).batch_size == 4
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)
    torch_only = query_encoder.QueryEncoderOptions(mode="torch")
    assert not isinstance(load_encoder(MODEL, "cpu", 4, onnx=torch_only), query_encoder.OnnxEncoder)
    assert not isinstance(load_encoder(MODEL, "cpu", 4), query_encoder.OnnxEncoder)


def test_search_uses_the_export_and_ranks_as_torch_does(
    tmp_path: Path, embedder, exported: Path
) -> None:
    db = build_index(tmp_path)
    assert isinstance(query_embedder(db), query_encoder.OnnxEncoder)
    for mode in ("vector", "hybrid"):
        fast = search(db, "checksum of a payload", k=5, mode=mode)
        slow = search(db, "checksum of a payload", k=5, mode=mode, embedder=embedder)
        assert [h.chunk_id for h in fast] == [h.chunk_id for h in slow]
        assert [round(h.score, 4) for h in fast] == [round(h.score, 4) for h in slow]


def test_a_search_process_with_the_export_never_imports_torch(
    tmp_path: Path, exported: Path
) -> None:
    db = build_index(tmp_path)
    script = (
        "import sys\n"
        "from indexer_core.search.query import search\n"
        f"hits = search({db!r}, 'checksum of a payload', k=3)\n"
        "print(hits[0].name, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["compute_checksum", "False", "False"]


def test_without_an_export_the_model_serves_and_exports(tmp_path: Path, monkeypatch) -> None:
    options = query_encoder.QueryEncoderOptions(cache_dir=str(tmp_path / "empty-cache"))
    assert query_encoder.load_onnx_query_encoder(MODEL, options) is None
    first = load_query_encoder(MODEL, options)  # the torch model, which exports as it loads
    assert not isinstance(first, query_encoder.OnnxEncoder)
    assert isinstance(load_query_encoder(MODEL, options), query_encoder.OnnxEncoder)
    assert list((tmp_path / "empty-cache").glob("*/model.onnx"))
    off = query_encoder.QueryEncoderOptions(mode="torch", cache_dir=str(tmp_path / "empty-cache"))
    assert not isinstance(load_query_encoder(MODEL, off), query_encoder.OnnxEncoder)


def _model_dir(tmp_path: Path, modules: list[dict], pooling: dict) -> Path:
    source = resolve_model_path(MODEL)
    target = tmp_path / "model"
    target.mkdir()
    for name in ("tokenizer.json", "sentence_bert_config.json"):
        (target / name).write_text((source / name).read_text())
    (target / "modules.json").write_text(json.dumps(modules))
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, **pooling})
    )
    return target


@pytest.mark.parametrize(
    "modules, pooling",
    [
        # A Dense layer after pooling: not a layout the ONNX path reproduces.
        (["Transformer", "Pooling", "Dense", "Normalize"], {"pooling_mode_mean_tokens": True}),
        # Two pooling modes at once (concatenated by sentence-transformers).
        (
            ["Transformer", "Pooling"],
            {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True},
        ),
        # A pooling mode it does not implement.
        (["Transformer", "Pooling"], {"pooling_mode_mean_sqrt_len_tokens": True}),
    ],
)
def test_other_layouts_keep_the_torch_path(
    tmp_path: Path, modules: list[str], pooling: dict
) -> None:
    paths = {"Transformer": "", "Pooling": "1_Pooling"}
    listed = [
        {
            "idx": i,
            "name": str(i),
            "path": paths.get(t, f"{i}_{t}"),
            "type": f"sentence_transformers.models.{t}",
        }
        for i, t in enumerate(modules)
    ]
    assert query_encoder.model_layout(_model_dir(tmp_path, listed, pooling)) is None


def test_the_packaged_layout_read_from_a_copy(tmp_path: Path) -> None:
    listed = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    layout = query_encoder.model_layout(
        _model_dir(tmp_path, listed, {"pooling_mode_cls_token": True})
    )
    assert layout is not None and (layout.pooling, layout.normalize) == ("cls", False)


def test_a_damaged_export_is_dropped_and_the_model_serves(
    tmp_path: Path, monkeypatch, embedder
) -> None:
    options = query_encoder.QueryEncoderOptions(cache_dir=str(tmp_path / "cache"))
    path = query_encoder.export_path(MODEL, resolve_model_path(MODEL), options)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx model")
    assert query_encoder.load_onnx_query_encoder(MODEL, options) is None
    assert not path.exists()  # removed, so the next export replaces it
    assert query_encoder.export_for_queries(embedder, MODEL, options) == path and path.is_file()


def test_an_unwritable_cache_keeps_the_torch_path(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    options = query_encoder.QueryEncoderOptions(cache_dir=str(blocker / "cache"))  # no mkdir
    encoder = load_query_encoder(MODEL, options)
    assert not isinstance(encoder, query_encoder.OnnxEncoder)
    assert encoder.encode_query("hello").shape == (384,)


def test_encode_async_calls_queued_back_to_back_give_each_its_own_vectors(
    embedder, exported: Path
) -> None:
    """Calls queued before the earlier ones finish share the encoder's threads first come,
    first served; each future holds the model's vectors for its own texts, in its order."""
    encoder = query_encoder.load_onnx_encoder(MODEL, batch_size=1, workers=2)
    groups = [TEXTS, TEXTS[::-1], [], [f"def g{i}(): return {i}" for i in range(7)], ["x"]]
    futures = [encoder.encode_async(texts) for texts in groups]
    for texts, future in zip(groups, futures):
        vectors = future.result(timeout=120)
        assert vectors.shape == (len(texts), encoder.dim)
        if texts:
            np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-5)
    broken = query_encoder.load_onnx_encoder(MODEL, batch_size=1, workers=2)
    session, broken.session = broken.session, None  # every batch fails: the future says so
    with pytest.raises(AttributeError):
        broken.encode_async(TEXTS).result(timeout=60)
    broken.session = session  # and the threads are free for the next call
    np.testing.assert_allclose(
        broken.encode_async(TEXTS).result(timeout=60), embedder.encode(TEXTS), atol=1e-5
    )


class _GatedEncoder:
    """The ONNX encoder with every queued call held until the test opens the gate (the first
    call failing if asked): partitions stay "being encoded" as long as the test needs."""

    def __init__(self, inner, fail_first: bool = False) -> None:
        import threading

        self.inner, self.fail_first = inner, fail_first
        self.gate = threading.Event()
        self.calls: list[list[str]] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode_async(self, texts: list[str]):
        import threading
        from concurrent.futures import Future

        self.calls.append(list(texts))
        failing = self.fail_first and len(self.calls) == 1
        out: Future = Future()

        def later() -> None:
            self.gate.wait(60)
            if failing:
                out.set_exception(RuntimeError("device lost"))
            else:
                out.set_result(self.inner.encode(texts))

        threading.Thread(target=later, daemon=True).start()
        return out


@pytest.mark.parametrize("fail_first", [False, True])
def test_worker_takes_a_text_another_partition_is_still_encoding_from_it(
    tmp_path: Path, embedder, exported: Path, fail_first: bool
) -> None:
    """The worker queues a partition's texts while the one before is still on the encoder; a
    text both hold is encoded once, by the first, and the second takes its vector. If the
    first fails, the second encodes the shared texts itself and still lands whole."""
    import time

    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.embed_worker import EmbeddingWorker
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.storage import integrity
    from indexer_core.storage import tables as storage
    from tests.conftest import SAMPLE_FILES, write_tree

    db_uri = str(tmp_path / "lancedb")
    shared = {**SAMPLE_FILES, "extra.py": "def brand_new_helper(v):\n    return sorted(set(v))\n"}
    write_tree(tmp_path / "first", shared)
    own_file = "def only_here(a, b):\n    return a ^ b\n"
    write_tree(tmp_path / "second", {**shared, "own.py": own_file})
    for name in ("first", "second"):
        chunk_partition(db_uri, name, str(tmp_path / name), 0, IndexSettings(shards=1))
    encoder = _GatedEncoder(query_encoder.load_onnx_encoder(MODEL, workers=2), fail_first)
    worker = EmbeddingWorker(db_uri, encoder)
    first, second = worker.submit("first", 0), worker.submit("second", 0)
    deadline = time.monotonic() + 60
    while len(encoder.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    encoder.gate.set()
    assert len(encoder.calls) == 2  # both queued while the first was still being encoded
    own = [t for t in encoder.calls[1] if "only_here" in t]
    assert own and encoder.calls[1] == own  # the second queued only what the first lacks
    report = second.result(timeout=120)
    worker.close()
    if fail_first:
        with pytest.raises(RuntimeError, match="device lost"):
            first.result()
        assert report.embedded == report.chunks  # it encoded the shared texts itself
    else:
        assert first.result().embedded == len(encoder.calls[0])
        assert report.embedded == len(own) and report.reused == report.chunks - len(own)
    vectors = storage.connect(db_uri).open_table(storage.VECTORS).to_arrow()
    chunks = storage.connect(db_uri).open_table(storage.CHUNKS).to_arrow()
    ids, embed_texts = chunks.column("chunk_id"), chunks.column("embed_text")
    texts = dict(zip(ids.to_pylist(), embed_texts.to_pylist()))
    rows = [r for r in vectors.to_pylist() if r["repo"] == "second"]
    assert len(rows) == report.chunks > 0
    expected = embedder.encode([texts[r["chunk_id"]] for r in rows])
    np.testing.assert_allclose([r["vector"] for r in rows], expected, atol=1e-4)
    assert integrity.check_unique_chunk_ids(db_uri).passed


def test_worker_on_the_export_gives_the_models_vectors_and_encode_times_that_add_up(
    tmp_path: Path, embedder, exported: Path
) -> None:
    """Partitions streamed onto the ONNX encoder land with the model's own vectors; each
    report's `embed_seconds` is its share of the encoder's busy time, so their sum never
    exceeds the time the whole submission took, although partitions overlap on the encoder."""
    import time

    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.embed_worker import EmbeddingWorker
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.storage import tables as storage
    from orchestration.metadata import encoder_padding
    from tests.conftest import write_tree

    db_uri = str(tmp_path / "lancedb")
    tree = {
        f"pkg/mod_{i}.py": f"def handler_{i}(event):\n    return event * {i}\n" for i in range(24)
    }
    root = write_tree(tmp_path / "repo", tree)
    settings = IndexSettings(shards=4, use_git=False)
    for shard in range(4):
        chunk_partition(db_uri, "repo", str(root), shard, settings)
    encoder = query_encoder.load_onnx_encoder(MODEL, workers=2)
    worker = EmbeddingWorker(db_uri, encoder)
    began = time.perf_counter()
    reports = [f.result(timeout=120) for f in [worker.submit("repo", s) for s in range(4)]]
    elapsed = time.perf_counter() - began
    worker.close()
    assert sum(r.embedded for r in reports) == 24
    assert 0 < sum(r.embed_seconds for r in reports) <= elapsed
    chunks = storage.connect(db_uri).open_table(storage.CHUNKS).to_arrow()
    texts = dict(
        zip(chunks.column("chunk_id").to_pylist(), chunks.column("embed_text").to_pylist())
    )
    rows = storage.connect(db_uri).open_table(storage.VECTORS).to_arrow().to_pylist()
    expected = embedder.encode([texts[r["chunk_id"]] for r in rows])
    np.testing.assert_allclose([r["vector"] for r in rows], expected, atol=1e-4)
    # The encoder counted every text's tokens once, and what its batches padded them to.
    embedded = [texts[r["chunk_id"]] for r in rows]
    own = sum(len(e.ids) for e in encoder.tokenizer.encode_batch(embedded))
    assert encoder.tokens == own <= encoder.padded_tokens
    padding = encoder_padding(encoder)
    assert padding["encoder_tokens"] == own
    assert padding["encoder_padding"] == round(encoder.padded_tokens / own - 1.0, 4)
    assert encoder_padding(embedder) == {}  # the model's own encoder counts no padding
