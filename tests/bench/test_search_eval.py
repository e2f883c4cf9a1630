"""The search evaluation's doc stripping, query files and scoring (fast, no model, no network)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bench.search_eval import prepare, scoring

PY = '''"""Module doc."""
import os
X = 1
"""Attribute doc."""


class A:
    """Class doc,
    two lines."""

    def f(self):
        """Only a docstring."""

    def g(self):  # comment stays
        """Doc."""
        return 1


def h(): "same line"
'''

JS = """/**
 * Module dependencies.
 */
var s = "/** not a comment */";
// plain comment stays

/**
 * Add two numbers.
 * @param {number} a
 */
function add(a, b) { return a + b; /** inline doc */ }
var t = `template /** kept */`;
"""

GO = """// Copyright header stays.

// Package demo does things.
package demo

//go:generate stringer
// Run runs.
// Second line.
func Run() {
	// body comment stays
}

// Kinds of things.
const (
	// A is a.
	A = 1
)

var x = 1 // trailing stays
"""

RUST = """//! Crate doc.
use std::fmt;

/// A thing.
/// More.
pub struct Thing; // stays
//// not a doc comment
fn main() {}
"""

RUBY = """# frozen_string_literal: true

# A class doc.
class Foo
  # Method doc.
  # More.
  def bar
    # body comment stays
  end
end
"""

C = """#include <stdio.h>

/* File header comment, stays: not above a function. */

/* Adds.
 * Two lines. */
static int
add(int a, int b)
{
    return a + b; // stays
}

// Prototype comment stays.
int sub(int a, int b);

/** Doc anywhere. */
struct s { int x; };
"""


def same_lines(a: str, b: str) -> None:
    assert a.count("\n") == b.count("\n")


def test_python_docstrings_blanked_keeping_lines_and_syntax() -> None:
    out = prepare.strip_python(PY)
    same_lines(PY, out)
    ast.parse(out)
    assert "doc" not in out.lower().replace("docs", "")
    assert "same line" in out  # shares its line with code: left alone
    lines = out.split("\n")
    assert lines[11].strip() == "pass"  # f's body was only a docstring
    assert "# comment stays" in out and "return 1" in out


def test_block_docs_blanked_strings_kept() -> None:
    out = prepare.strip_block_docs(JS)
    same_lines(JS, out)
    assert (
        "Module dependencies" not in out
        and "Add two numbers" not in out
        and "inline doc" not in out
    )
    assert '"/** not a comment */"' in out and "`template /** kept */`" in out
    assert "// plain comment stays" in out
    assert "function add(a, b) { return a + b;  }" in out
    assert out.split("\n")[:3] == ["", "", ""]


def test_go_doc_comments_above_declarations() -> None:
    out = prepare.strip_go(GO)
    same_lines(GO, out)
    for gone in ("Package demo", "Run runs", "Second line", "Kinds of things", "A is a"):
        assert gone not in out
    for kept in (
        "Copyright header stays",
        "//go:generate stringer",
        "body comment stays",
        "trailing stays",
    ):
        assert kept in out


def test_rust_doc_lines() -> None:
    out = prepare.strip_rust(RUST)
    same_lines(RUST, out)
    assert "Crate doc" not in out and "A thing" not in out and "More." not in out
    assert "// stays" in out and "//// not a doc comment" in out


def test_ruby_comment_blocks_above_definitions() -> None:
    out = prepare.strip_ruby(RUBY)
    same_lines(RUBY, out)
    assert "A class doc" not in out and "Method doc" not in out and "More." not in out
    assert "frozen_string_literal" in out and "body comment stays" in out


def test_c_comments_above_functions() -> None:
    out = prepare.strip_c(C)
    same_lines(C, out)
    assert "Adds." not in out and "Two lines" not in out and "Doc anywhere" not in out
    assert (
        "File header comment, stays" in out
        and "Prototype comment stays" in out
        and "// stays" in out
    )


def test_strip_docs_dispatches_by_extension() -> None:
    assert prepare.strip_docs("a/b.rs", RUST) == prepare.strip_rust(RUST)
    assert prepare.strip_docs("README.md", "/** x */") == "/** x */"


def test_prepare_copies_included_files_and_checks_spans(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text(PY)
    (src / "pkg" / "m_test.py").write_text("x = 1\n")
    (src / "setup.py").write_text("x = 1\n")
    repo = prepare.Repo("demo", "python", {}, include=["pkg/*.py"], exclude=["*_test.py"])
    stats = prepare.prepare(repo, src, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.py")) == ["pkg/m.py"]
    assert stats["files"] == 1 and stats["doc_lines_blanked"] == 5
    good = {
        "id": "demo-001",
        "repo": "demo",
        "type": "symbol",
        "query": "A.g",
        "relevant": [{"path": "pkg/m.py", "start": 14, "end": 16, "grade": 2}],
    }
    assert prepare.check_queries("demo", [good], out) == []
    bad = [
        {
            **good,
            "id": "demo-002",
            "relevant": [{"path": "pkg/m.py", "start": 12, "end": 99, "grade": 2}],
        },
        {
            **good,
            "id": "demo-003",
            "relevant": [{"path": "pkg/nope.py", "start": 1, "end": 1, "grade": 2}],
        },
        {
            **good,
            "id": "demo-004",
            "relevant": [{"path": "pkg/m.py", "start": 1, "end": 1, "grade": 2}],
        },  # blank
        {**good, "id": "demo-005", "type": "other"},
        {
            **good,
            "id": "demo-006",
            "relevant": [{"path": "pkg/m.py", "start": 14, "end": 16, "grade": 1}],
        },
    ]
    problems = prepare.check_queries("demo", bad, out)
    assert [p.split(":")[0] for p in problems] == [
        "demo-002",
        "demo-003",
        "demo-004",
        "demo-005",
        "demo-006",
    ]


def test_scoring() -> None:
    relevant = [
        {"path": "a", "start": 10, "end": 20, "grade": 2},
        {"path": "b", "start": 1, "end": 4, "grade": 1},
    ]
    perfect = scoring.score([("a", 10, 20), ("b", 1, 4)], relevant)
    assert perfect == {"ndcg@10": 1.0, "recall@10": 1.0, "mrr@10": 1.0, "span_recall@10": 1.0}
    # a file counts once; the span in `a` is missed (overlap 2 of 11 lines), found later
    got = scoring.score([("x", 1, 5), ("a", 19, 30), ("a", 12, 18)], relevant)
    assert got["mrr@10"] == 0.5 and got["recall@10"] == 0.5 and got["span_recall@10"] == 0.5
    assert got["ndcg@10"] == pytest.approx((2 / 1.5849625) / (2 + 1 / 1.5849625), rel=1e-6)
    assert scoring.score([], relevant)["ndcg@10"] == 0.0
    assert scoring.overlap_ok((1, 100), (50, 51)) and not scoring.overlap_ok((1, 10), (10, 30))


def test_checked_in_queries_are_well_formed() -> None:
    """Ids, types and grades of every query file (spans are checked against the prepared
    copies by `python -m bench.search_eval.prepare`, which needs the sources)."""
    repos = {r.name: r for r in prepare.load_repos()}
    for path in sorted(prepare.QUERIES_DIR.glob("*.jsonl")):
        assert path.stem in repos, f"{path.name}: no entry in repos.toml"
        queries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for q in queries:
            assert set(q) == {"id", "repo", "type", "query", "relevant"}, q.get("id")
            for r in q["relevant"]:
                assert set(r) == {"path", "start", "end", "grade"}, q["id"]
                assert any(
                    __import__("fnmatch").fnmatchcase(r["path"], g)
                    for g in repos[path.stem].include
                ), q["id"]
        ids = [q["id"] for q in queries]
        assert len(ids) == len(set(ids))
        assert all(q["repo"] == path.stem and q["type"] in prepare.QUERY_TYPES for q in queries)
        assert all(any(r["grade"] == 2 for r in q["relevant"]) for q in queries)


def test_aggregate_and_markdown_from_fake_results() -> None:
    from bench.search_eval import __main__ as runner

    def row(qid: str, qtype: str, value: float) -> dict:
        metrics = {m: value for m in scoring.METRICS}
        return {
            "id": qid,
            "type": qtype,
            "query": "q",
            "modes": {m: {**metrics, "top": ["a.py:1-10"]} for m in runner.MODES},
        }

    per_query = {
        "r1": [row("r1-001", "semantic", 1.0), row("r1-002", "symbol", 0.0)],
        "r2": [row("r2-001", "semantic", 0.5)],
    }
    agg = runner.aggregate(per_query, {"r1": "python", "r2": "go"}, {"r2": "dev"})
    assert agg["by_split"]["hybrid"]["dev"]["ndcg@10"] == 0.5  # go alone
    assert agg["by_split"]["vector"]["held-out"]["span_recall@10"] == 0.5  # python, the default
    assert agg["by_language"]["hybrid"]["python"]["ndcg@10"] == 0.5
    assert agg["over_languages"]["hybrid"]["ndcg@10"] == 0.5  # mean of python 0.5 and go 0.5
    assert agg["by_type"]["hybrid"]["semantic"]["ndcg@10"] == 0.75  # mean of python 1.0 and go 0.5
    assert agg["all_queries"]["hybrid"]["recall@10"] == 0.5
    report = {
        "command": "python -m bench.search_eval",
        "commit": "x",
        "date": "now",
        "machine": "m",
        "model": "m",
        "device": "cpu",
        "k": 10,
        "queries": 3,
        "rules": scoring.RULES,
        "seconds": {"prepare": 0, "model": 0, "index": 0, "queries": 0, "total": 0},
        "repos": {
            "r1": {
                "language": "python",
                "fetch": {"pypi": "x==1"},
                "queries": 2,
                "query_types": {"semantic": 1, "symbol": 1},
                "index": {
                    "files": 1,
                    "chunks": 1,
                    "chunk_seconds": 0,
                    "embed_seconds": 0,
                    "search_index_seconds": 0,
                },
            }
        },
        "metrics": agg,
        "result_lines": {
            "go": {m: 10 for m in runner.MODES},
            "python": {m: 10 for m in runner.MODES},
        },
    }
    md = runner.markdown(report)
    assert "python -m bench.search_eval" in md and "| go |" in md and "architecture (mean" not in md
    assert "| dev languages (mean) |" in md and "| held-out languages (mean) |" in md
    assert {r.name for r in prepare.load_repos() if r.split == "dev"} == {
        "click",
        "cobra",
        "openjdk-juc",
        "mobx",
    }
