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
