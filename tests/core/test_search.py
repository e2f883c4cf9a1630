"""Search over a real index: modes, identifiers, filters, scores, model checks, hierarchy."""

from __future__ import annotations

import numpy as np
import pytest

from indexer_core.search.filters import SearchFilters, glob_to_regex
from indexer_core.search.hits import get_chunk
from indexer_core.search.query import IndexModelMismatch, search
from tests.core.search_corpus import build_index


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    return build_index(tmp_path_factory.mktemp("search"))


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_each_mode_finds_the_function(db, mode):
    hits = search(db, "checksum of a payload", k=3, mode=mode)
    assert hits, mode
    assert any(h.name == "compute_checksum" for h in hits)
    top = hits[0]
    assert top.path and top.start_line <= top.end_line and top.kind and top.snippet()


def test_vector_mode_finds_meaning_without_shared_words(db):
    hits = search(db, "download the account details of a person", k=3, mode="vector")
    assert "fetchUserProfile" in [h.name for h in hits]


def test_text_mode_matches_the_words_of_camel_case_names(db):
    # "profile" occurs only inside `fetchUserProfile`; the full-text index holds its words.
    hits = search(db, "the profile of a user", k=3, mode="text")
    assert hits and hits[0].name == "fetchUserProfile"
    assert search(db, "fetchUserProfile", k=1, mode="text")[0].name == "fetchUserProfile"


@pytest.mark.parametrize(
    "query, path, defines",
    [
        ("parse_header", "pkg/http_client.py", "def parse_header"),
        ("HttpClient.send", "pkg/http_client.py", "def send"),
        ("MailQueue.send", "pkg/mail.py", "def send"),
        ("fetchUserProfile", "web/app.js", "function fetchUserProfile"),
        ("ParseHeader", "go/server.go", "func ParseHeader"),
        ("Server.Route", "go/server.go", "Route(path string"),
        ("event bus", "web/app.js", "class EventBus"),
    ],
)
def test_identifier_queries_rank_the_identifier_first(db, query, path, defines):
    top = search(db, query, k=5)[0]
    assert top.path == path and defines in top.content, (query, top.name)


def test_filters_language_kind_repo(db):
    go = search(db, "parse a header line", k=10, filters=SearchFilters(language="go"))
    assert go and {h.language for h in go} == {"go"}
    methods = search(db, "send data", k=10, filters=SearchFilters(kind="method"))
    assert methods and {h.kind for h in methods} == {"method"}
    assert search(db, "send data", k=10, filters=SearchFilters(repo="demo"))
    assert search(db, "send data", k=10, filters=SearchFilters(repo="other")) == []


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_path_glob_including_a_quote(db, mode):
    hits = search(
        db, "quoted path marker", k=5, mode=mode, filters=SearchFilters(path_glob="docs/it's*.py")
    )
    assert hits and {h.path for h in hits} == {"docs/it's quoted.py"}
    js = search(
        db, "subscribe a listener", k=10, mode=mode, filters=SearchFilters(path_glob="web/*.js")
    )
    assert js and all(h.path.startswith("web/") for h in js)


def test_glob_translation():
    assert glob_to_regex("src/*.py") == r"^src/.*\.py$"
    assert glob_to_regex("a[!x]?.go") == r"^a[^x].\.go$"
    assert glob_to_regex("it's") == "^it's$"


def test_min_score_and_k(db):
    all_hits = search(db, "close the socket", k=20)
    assert 1 < len(all_hits) <= 20
    assert all(0 < h.score <= 1.0 for h in all_hits)
    cut = all_hits[len(all_hits) // 2].score
    kept = search(db, "close the socket", k=20, min_score=cut)
    assert kept and all(h.score >= cut for h in kept) and len(kept) < len(all_hits)
    assert len(search(db, "close the socket", k=2)) == 2
    vector = search(db, "close the socket", k=5, mode="vector", min_score=0.2)
    assert all(h.score >= 0.2 for h in vector)


class _OtherModel:
    """Stands in for a loaded model that did not build the index."""

    def __init__(self, name: str, dim: int) -> None:
        self.model_name, self.dim = name, dim

    def encode(self, texts):
        return np.ones((len(texts), self.dim), np.float32)


def test_model_mismatch_is_a_clear_error(db):
    with pytest.raises(IndexModelMismatch, match="built with"):
        search(db, "anything", embedder=_OtherModel("some-other-model", 384))
    with pytest.raises(IndexModelMismatch, match="dimensions"):
        search(db, "anything", embedder=_OtherModel("all-MiniLM-L6-v2", 768))
    assert search(db, "anything", mode="text", embedder=_OtherModel("x", 3)) is not None


def test_get_chunk_has_parent_and_children(db):
    send = next(h for h in search(db, "HttpClient.send", k=5) if "send" in h.name)
    chunk = get_chunk(db, send.chunk_id)
    assert "def send" in chunk["content"] and chunk["kind"] == "method"
    parent = chunk["parent"]
    assert parent and "HttpClient" in parent["name"]
    family = get_chunk(db, parent["chunk_id"])
    assert send.chunk_id in [c["chunk_id"] for c in family["children"]]
    assert get_chunk(db, "0" * 24) is None


def test_the_query_that_builds_the_text_index_searches_it(tmp_path, embedder):
    """After a bare index (no full-text index yet), the first query builds one and must rank
    as every later query does: not over the unindexed text, which scores differently."""
    import shutil

    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.embed_step import embed_partition
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.search import indexes as search_index
    from tests.core.search_corpus import write_repo

    root = write_repo(tmp_path / "repo")
    settings = IndexSettings(shards=1, use_git=False)
    fresh = str(tmp_path / "fresh")
    chunk_partition(fresh, "demo", str(root), 0, settings)
    embed_partition(fresh, "demo", 0, embedder)
    indexed = str(tmp_path / "indexed")
    shutil.copytree(fresh, indexed)
    search_index.build_fts_indexes(indexed)

    def ranked(db: str) -> list[tuple[str, float]]:
        hits = search(db, "checksum of a payload", k=5, mode="text", explain=True)
        return [(h.name, h.why["rankings"]["text"]["score"]) for h in hits]

    assert ranked(fresh) == ranked(indexed)
