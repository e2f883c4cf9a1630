"""How hybrid search fuses its rankings: sentences by normalised scores, identifiers by rank."""

from __future__ import annotations

import pytest

from indexer_core.search import ranking
from indexer_core.search.query import search
from indexer_core.search.ranking import fuse, normalised, query_kind
from tests.core.ranking_corpus import build_index


def _vector(n: int = 50) -> list[tuple[str, float]]:
    """A typical embedding ranking: cosines close together, slowly falling."""
    return [(f"v{i}", 0.62 - 0.004 * i) for i in range(n)]


def test_first_in_every_ranking_scores_one():
    for kind in ("natural", "identifier"):
        rankings = {"vector": [("a", 0.7), ("b", 0.5)], "text": [("a", 12.0), ("c", 3.0)]}
        fused = fuse(rankings, kind)
        assert fused["a"] == pytest.approx(1.0)
        assert all(0.0 <= v < 1.0 for cid, v in fused.items() if cid != "a")


@pytest.mark.parametrize("kind", ["natural", "identifier"])
def test_contributions_are_what_each_ranking_adds(kind):
    """The ranking stage weighs a file by each ranking's contribution: they sum to the fused
    score, and a ranking's contribution never exceeds its weight's share."""
    rankings = {
        "vector": _vector(),
        "text": [("v3", 14.0), ("t1", 9.0), ("v0", 2.0)],
        "names": [("t1", 0.6)],
    }
    contributed = ranking.contributions(rankings, kind)
    assert set(contributed) == set(rankings)
    assert ranking.summed(contributed) == pytest.approx(fuse(rankings, kind))
    weights = ranking.WEIGHTS[kind]
    total = sum(weights[name] for name in rankings)
    for name, values in contributed.items():
        assert max(values.values()) <= weights[name] / total + 1e-9
    assert contributed["text"]["v3"] > contributed["text"]["v0"]


def test_a_sentence_weighs_how_far_ahead_a_chunk_is_not_only_its_place(monkeypatch):
    """The same two orders, BM25's winner absent from the vector top 50, against a chunk 8th
    in the vector ranking and 29th in BM25: far ahead in BM25 (25 against at most 9), the
    winner leads; barely ahead (9.2), it does not. Reciprocal rank sees no difference."""

    def rankings(winner: float) -> dict[str, list[tuple[str, float]]]:
        vector = _vector()
        text = [("winner", winner)] + [(f"t{i}", 9.0 - 0.2 * i) for i in range(27)]
        text.append((vector[7][0], 3.5))
        text += [(f"u{i}", 3.0 - 0.05 * i) for i in range(21)]
        return {"vector": vector, "text": text}

    middling = _vector()[7][0]
    far, near = fuse(rankings(25.0), "natural"), fuse(rankings(9.2), "natural")
    assert far["winner"] > far[middling] and near["winner"] < near[middling]
    monkeypatch.setitem(ranking.FUSION, "natural", "ranks")
    far, near = fuse(rankings(25.0), "natural"), fuse(rankings(9.2), "natural")
    assert far == near


def test_normalised_scores_do_not_depend_on_how_many_were_fetched():
    long = _vector(120)
    assert normalised(long)[: ranking.SCORE_DEPTH] == normalised(long[: ranking.SCORE_DEPTH])
    values = dict(normalised(long))
    assert values["v0"] == 1.0
    assert values[f"v{ranking.SCORE_DEPTH - 1}"] == pytest.approx(1.0 / ranking.SCORE_DEPTH)
    assert values["v100"] == 0.0  # past the depth: nothing
    assert normalised([("only", 3.2)]) == [("only", 1.0)]  # one BM25 match is a full match
    assert normalised([("a", 2.0), ("b", 2.0)]) == [("a", 1.0), ("b", 1.0)]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    return build_index(tmp_path_factory.mktemp("fusion"))


@pytest.mark.parametrize(
    "query", ["match a route pattern against a path", "save the session data to the store"]
)
def test_a_sentence_ranks_the_same_whatever_k(db, query):
    assert query_kind(query) == "natural"
    first = [h.chunk_id for h in search(db, query, k=3)]
    assert first == [h.chunk_id for h in search(db, query, k=12)][:3]
    assert first == [h.chunk_id for h in search(db, query, k=30)][:3]
    hits = search(db, query, k=5, explain=True)
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert {"vector", "text"} & hits[0].why["rankings"].keys()


def test_explain_shows_how_a_sentence_was_fused(db):
    query = "match a route pattern against a path"
    hits = search(db, query, k=5, explain=True)
    weights = ranking.WEIGHTS["natural"]
    for hit in hits:
        why = hit.why
        assert why["fusion"] == "scores (natural query)"
        total = 0.0
        for name, entry in why["rankings"].items():
            value = entry["value"] if name in ("vector", "text") else entry["score"]
            assert 0.0 <= value <= 1.0
            total += weights[name] * value
        present = ("vector", "text", "words")  # the rankings a sentence's fusion had
        assert why["base"] == pytest.approx(total / sum(weights[n] for n in present), abs=2e-4)
    top = search(db, "match_route", k=1, explain=True)[0]
    assert top.why["fusion"] == "ranks (identifier query)"
    assert "value" not in top.why["rankings"]["vector"]
