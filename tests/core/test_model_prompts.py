"""Bringing another model: its prompts and its maximum length, on a tiny model built here."""

from __future__ import annotations

import numpy as np
import pytest

from indexer_core.chunking.files import chunk_file
from indexer_core.chunking.tokens import load_token_counter
from indexer_core.embedding.model import load_embedder
from indexer_core.embedding.prompts import Prompts, model_prompts
from indexer_core.indexing.settings import chunker_fingerprint
from tests.core.search_corpus import write_repo
from tests.core.tiny_model import QUERY_PROMPT, build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def tiny_with_document_prompt(tmp_path_factory) -> str:
    target = tmp_path_factory.mktemp("tiny-doc") / "model"
    prompts = {"query": "query: ", "document": "passage: "}
    return str(build_tiny_model(target, max_seq_length=96, prompts=prompts))


def test_prompts_come_from_the_model(tiny, tiny_with_document_prompt):
    assert model_prompts(tiny) == Prompts(query=QUERY_PROMPT, document="")
    assert model_prompts(tiny_with_document_prompt) == Prompts("query: ", "passage: ")
    assert model_prompts("all-MiniLM-L6-v2") == Prompts()  # the default needs none


def test_the_query_prompt_goes_before_every_query(tiny):
    embedder = load_embedder(tiny)
    assert embedder.dim == 32 and embedder.max_tokens == 64
    query = "parse an http header line"
    vector = embedder.encode_query(query)
    assert np.allclose(vector, embedder.encode([QUERY_PROMPT + query])[0], atol=1e-6)
    assert not np.allclose(vector, embedder.encode([query])[0], atol=1e-3)


def test_the_onnx_query_encoder_uses_the_prompt_too(tiny):
    from indexer_core.embedding.query_encoder import export_for_queries, load_onnx_query_encoder

    embedder = load_embedder(tiny)
    assert export_for_queries(embedder, tiny) is not None
    fast = load_onnx_query_encoder(tiny)
    assert fast is not None and fast.query_prefix == QUERY_PROMPT
    query = "send all bytes over the socket"
    assert np.abs(fast.encode_query(query) - embedder.encode_query(query)).max() < 1e-4


@pytest.mark.parametrize("fixture", ["tiny", "tiny_with_document_prompt"])
def test_the_models_maximum_length_sizes_the_chunks(fixture, request, tmp_path):
    model = request.getfixturevalue(fixture)
    counter = load_token_counter(model)
    minilm = load_token_counter("all-MiniLM-L6-v2")
    root = write_repo(tmp_path)
    small = chunk_file(str(root), "demo", "pkg/http_client.py", 0, counter).chunks
    large = chunk_file(str(root), "demo", "pkg/http_client.py", 0, minilm).chunks
    assert len(small) > len(large)  # 64 or 96 tokens, not 256: more, smaller chunks
    prefix = model_prompts(model).document
    assert counter.budget == counter.max_tokens - 2 - (counter.count(prefix) if prefix else 0)
    for chunk in small:
        assert counter.count(chunk.embed_text) <= counter.max_tokens - 2
        assert chunk.embed_text.startswith(prefix)
    assert chunker_fingerprint(model) != chunker_fingerprint("all-MiniLM-L6-v2")


def test_an_index_built_and_searched_with_the_tiny_model(tiny, tmp_path):
    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.embed_step import embed_partition
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.search import indexes as search_index
    from indexer_core.search.query import search

    root = write_repo(tmp_path / "repo")
    db = str(tmp_path / "db")
    settings = IndexSettings(shards=1, use_git=False, model=tiny)
    chunk_partition(db, "demo", str(root), 0, settings)
    embed_partition(db, "demo", 0, load_embedder(tiny))
    search_index.build_fts_indexes(db)
    hits = search(db, "parse_header", k=3)  # the index's own model embeds the query
    assert hits and hits[0].name in ("parse_header", "ParseHeader")
    assert all(h.end_line - h.start_line < 40 for h in hits)
