"""The ranking stage and result sizes on a real index: one result per file, code before its
tests, examples and docs unless asked, definitions first, spans an agent reads."""

from __future__ import annotations

import pytest

from indexer_core.search import file_roles, rerank
from indexer_core.search.filters import SearchFilters
from indexer_core.search.hits import MAX_HIT_LINES, get_chunk
from indexer_core.search.query import search
from tests.core.ranking_corpus import build_index


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    return build_index(tmp_path_factory.mktemp("ranking"))


def paths(hits) -> list[str]:
    return [h.path for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_files_first_repeats_discounted(db, mode, monkeypatch):
    query = "match a route pattern against a path"
    hits = search(db, query, k=30, mode=mode, explain=True)
    files = list(dict.fromkeys(paths(hits)))
    assert len(files) >= 3 and len(hits) > len(files)
    seen: set[str] = set()
    for hit in hits:  # a file's first result is its best chunk; later ones are marked repeats
        assert ("repeat" in hit.why) == (hit.path in seen)
        seen.add(hit.path)
    assert [h.rank_score for h in hits] == sorted((h.rank_score for h in hits), reverse=True)
    monkeypatch.setattr(rerank, "REPEAT", 0.0)  # repeats worth nothing: every file once first
    strict = search(db, query, k=30, mode=mode)
    assert paths(strict)[: len(files)] == list(dict.fromkeys(paths(strict)))


def test_definition_ranks_above_its_tests_and_uses(db):
    hits = search(db, "match_route", k=5)
    assert (hits[0].path, hits[0].name, hits[0].kind) == (
        "src/router.py",
        "match_route",
        "function",
    )
    assert paths(hits).index("tests/test_router.py") > 0


def test_tests_rank_first_when_the_query_asks_for_tests(db):
    without = search(db, "match_route", k=5, explain=True)
    asked = search(db, "tests of match_route", k=5, explain=True)
    test_hit = next(h for h in without if h.path == "tests/test_router.py")
    assert test_hit.why["role"].startswith("test")
    asked_hit = next(h for h in asked if h.path == "tests/test_router.py")
    assert "role" not in asked_hit.why
    assert asked_hit.rank_score > test_hit.rank_score
    assert search(db, "the tests that check how routes match", k=1)[0].path == (
        "tests/test_router.py"
    )


def test_docs_stay_searchable_but_code_answers_a_code_question(db):
    question = "how does the router match a path against route patterns"
    hits = search(db, question, k=10)
    assert hits[0].path == "src/router.py"
    assert paths(hits).index("docs/routing.md") > 0  # found, after the code
    docs = search(db, question, k=3, filters=SearchFilters(language="markdown"))
    assert set(paths(docs)) == {"docs/routing.md"} and docs[0].language == "markdown"
    asked = search(db, "routing docs: how does the router match a path", k=3)
    assert asked[0].path == "docs/routing.md"


def test_a_long_unit_is_one_result_pointing_at_its_best_part(db):
    hits = search(db, "rolling_checksum", k=3)
    hit = next(h for h in hits if h.path == "src/checksum.py")
    assert hit.parts == 18 and 1 <= hit.part <= 18
    assert hit.end_line - hit.start_line + 1 <= MAX_HIT_LINES
    assert (hit.unit_start, hit.unit_end) == (1, 143)
    assert hit.unit_start <= hit.start_line <= hit.end_line <= hit.unit_end
    assert sum(h.path == "src/checksum.py" for h in hits) == 1
    whole = next(h for h in search(db, "rolling_checksum", k=3, expand=True) if h.parts > 1)
    assert (whole.start_line, whole.end_line) == (1, 143)
    assert whole.content.count("\n") == 142
    chunk = get_chunk(db, hit.chunk_id)
    assert [p["part"] for p in chunk["unit_parts"]] == list(range(1, 19))
    assert chunk["unit_parts"][-1]["end_line"] == 143


def test_a_long_chunk_is_cut_to_its_best_window(db):
    hit = search(db, "crc_lookup_table", k=1)[0]
    assert hit.name == "crc_lookup_table"
    assert hit.end_line - hit.start_line + 1 == MAX_HIT_LINES
    assert hit.content.count("\n") == MAX_HIT_LINES - 1
    assert (hit.unit_start, hit.unit_end) == (1, 99)
    assert hit.start_line == 1  # the window holding the query's words: the definition line
    full = search(db, "crc_lookup_table", k=1, expand=True)[0]
    assert (full.start_line, full.end_line) == (1, 99) and full.content.count("\n") == 98


def test_explain_names_the_rankings_and_weights(db):
    hits = search(db, "match_route", k=5, explain=True)
    top = hits[0]
    assert top.why["definition"].startswith("function match_route")
    assert {"names", "text", "vector"} <= top.why["rankings"].keys()
    assert all(h.why is not None for h in hits)
    assert search(db, "match_route", k=1)[0].why is None
    assert hits == sorted(hits, key=lambda h: -h.rank_score)


def test_path_words_lift_the_file_a_query_names(db):
    hits = search(db, "session", k=3, mode="vector", explain=True)
    assert hits[0].path == "src/session.py" and hits[0].why["path"].startswith("x")
    router = search(db, "match_route", k=3)[0]
    assert router.also  # the file's other matching chunks, named without taking slots
    assert {get_chunk(db, cid)["path"] for cid in router.also} == {"src/router.py"}


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("src/router.py", file_roles.CODE),
        ("tests/test_router.py", file_roles.TEST),
        ("pkg/server_test.go", file_roles.TEST),
        ("web/app.spec.ts", file_roles.TEST),
        ("spec/models/user_spec.rb", file_roles.TEST),
        ("src/test/java/a/FooTest.java", file_roles.TEST),
        ("examples/serve_routes.py", file_roles.EXAMPLE),
        ("vendor/github.com/x/y.go", file_roles.VENDOR),
        ("api/v1/types.pb.go", file_roles.GENERATED),
        ("README.md", file_roles.DOCS),
        ("config/settings.yaml", file_roles.CONFIG),
        ("src/contest.py", file_roles.CODE),
        ("lib/testing_utils_helpers.py", file_roles.CODE),
    ],
)
def test_file_roles(path, role):
    assert file_roles.file_role(path) == role


def test_asked_roles():
    assert file_roles.asked_roles("where are the tests for parsing") == {file_roles.TEST}
    assert file_roles.asked_roles("an example of the router") == {file_roles.EXAMPLE}
    assert file_roles.asked_roles("how does the router match a path") == frozenset()


# Methods long enough to be chunks of their own (a small class is one chunk).
_RUBY_NOTES = "\n".join(f"    notify(:step_{i}, @failures + {i})" for i in range(14))

RUBY_PREDICATES = {
    "lib/reporter.rb": f"""
class Reporter
  def initialize(limit)
    @limit = limit
    @failures = 0
{_RUBY_NOTES}
  end

  def fail_fast_limit_met?
    return false unless @limit
{_RUBY_NOTES}
    @failures >= @limit
  end

  def reset!
{_RUBY_NOTES}
    @failures = 0
  end
end
""",
    "lib/runner.rb": f"""
class Runner
  def run(reporter, examples)
    examples.each do |example|
      break if reporter.fail_fast_limit_met?
      example.run
    end
{_RUBY_NOTES}
    # stop early: reporter.fail_fast_limit_met? says when the fail fast limit is met
    reporter.reset! if reporter.fail_fast_limit_met?
  end
end
""",
}


@pytest.fixture(scope="module")
def ruby_db(tmp_path_factory) -> str:
    return build_index(tmp_path_factory.mktemp("ruby"), "rb", RUBY_PREDICATES)


@pytest.mark.parametrize("query", ["fail_fast_limit_met?", "fail_fast_limit_met", "reset!"])
def test_a_ruby_predicate_or_bang_method_is_found_by_its_name(ruby_db, query):
    """`?` and `!` end a Ruby method's name: the name ranking knows `fail_fast_limit_met?`
    (it knew no such name, and the callers that mention it more often ranked first)."""
    hits = search(ruby_db, query, k=3, explain=True)
    assert (hits[0].path, hits[0].kind) == ("lib/reporter.rb", "method")
    assert hits[0].name.rstrip("?!") == query.rstrip("?!")
    assert "names" in hits[0].why["rankings"]


C_LIBRARY = {
    "include/frames.h": """
#ifndef FRAMES_H
#define FRAMES_H

#include <stddef.h>

/* frames_write_skippable() :
 * Writes a skippable frame that decoders ignore: a magic number chosen by the variant,
 * the length of the user data, then the user data itself.
 * Returns the number of bytes written, or an error when the buffer is too small. */
size_t frames_write_skippable(void* dst, size_t capacity, const void* src, size_t size,
                              unsigned variant);

/* frames_bound() : the largest frame for a source of `size` bytes. */
size_t frames_bound(size_t size);

#endif
""",
    "src/frames.c": """
#include <string.h>
#include "frames.h"

size_t frames_bound(size_t size)
{
    return size + 8;
}

size_t frames_write_skippable(void* dst, size_t capacity, const void* src, size_t size,
                              unsigned variant)
{
    unsigned char* op = (unsigned char*)dst;
    if (capacity < size + 8 || variant > 15) return (size_t)-1;
    op[0] = (unsigned char)(0x50 + variant);
    op[4] = (unsigned char)size;
    memcpy(op + 8, src, size);
    return size + 8;
}
""",
    "src/checksum.c": """
unsigned checksum_update(unsigned state, const unsigned char* data, unsigned size)
{
    while (size--) state = (state << 5) + state + *data++;
    return state;
}
""",
}


@pytest.fixture(scope="module")
def c_db(tmp_path_factory) -> str:
    return build_index(tmp_path_factory.mktemp("clib"), "c", C_LIBRARY)


def test_declared_names():
    from indexer_core.search.declarations import declared_names

    header = C_LIBRARY["include/frames.h"]
    assert declared_names(header) == ["frames_write_skippable", "frames_bound"]
    code = "static int f(int a)\n{\n    return g(a);\n}\nint h(void);\n#define M(x) (x)\n"
    assert declared_names(code) == ["h"]  # a definition, a call, a macro are no declarations
    assert declared_names("/* doc */\nint h(void);") == ["h"]
    assert declared_names("/* doc */\nint h(void);", leading=True) == []
    assert declared_names("int h(void);\nint k(void);", leading=True) == ["h"]


def test_a_header_declaration_leads_to_the_definition(c_db, monkeypatch):
    """The words of a question are in the header's comment; the answer is the definition:
    it ranks first, at the declaration's score, and the declaration counts less."""
    from indexer_core.search import declarations

    query = "write a frame of user data that decoders skip, with a magic number variant"
    hits = search(c_db, query, k=5, explain=True)
    assert (hits[0].path, hits[0].name) == ("src/frames.c", "frames_write_skippable")
    assert hits[0].why["declaration"].startswith("declared at include/frames.h:")
    header = next(h for h in hits if h.path == "include/frames.h")
    assert header.why["declaration"].startswith("declaration of a function defined elsewhere")
    assert "declaration" not in search(c_db, query, k=5, mode="vector", explain=True)[0].why
    monkeypatch.setattr(declarations, "DECLARATION_CANDIDATES", 0)
    assert search(c_db, query, k=5)[0].path == "include/frames.h"  # as it was without
