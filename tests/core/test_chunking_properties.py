"""Invariants over every sample at several budgets, markdown, text windows and languages."""

from __future__ import annotations

import random

import pytest

from indexer_core.chunking import chunk_text
from indexer_core.chunking.tokens import TokenCounter, load_token_counter
from indexer_core.discovery.languages import get_parser, language_for_path
from tests.core.chunk_checks import check_invariants
from tests.core.chunk_samples import SAMPLES


def counter_with(max_tokens: int) -> TokenCounter:
    return TokenCounter(load_token_counter("all-MiniLM-L6-v2").tokenizer, max_tokens=max_tokens)


@pytest.mark.parametrize("max_tokens", [100, 140, 256])
@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_samples_keep_invariants(language: str, max_tokens: int) -> None:
    path, text = SAMPLES[language]
    counter = counter_with(max_tokens)
    check_invariants(text, path, language, counter, chunk_text(text, path, language, counter))


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_repeated_samples_merge_and_split(language: str) -> None:
    """Many copies of a sample: big files with many units, still every invariant."""
    path, text = SAMPLES[language]
    big = "\n".join([text] * 12)
    counter = counter_with(100)
    spans = chunk_text(big, path, language, counter)
    check_invariants(big, path, language, counter, spans)


@pytest.mark.parametrize("language", ["python", "javascript", "go", "rust", "bash"])
def test_small_units_merge(language: str) -> None:
    makers = {
        "python": lambda i: f"def f{i}():\n    return {i}\n",
        "javascript": lambda i: f"function f{i}() {{ return {i}; }}\n",
        "go": lambda i: f"func f{i}() int {{ return {i} }}\n",
        "rust": lambda i: f"fn f{i}() -> i32 {{ {i} }}\n",
        "bash": lambda i: f"f{i}() {{ echo {i}; }}\n",
    }
    text = "\n".join(makers[language](i) for i in range(40))
    counter = load_token_counter("all-MiniLM-L6-v2")
    spans = chunk_text(text, "x", language, counter)
    check_invariants(text, "x", language, counter, spans)
    # Runs of tiny units share a chunk, but at most MERGE_MAX_UNITS of them (3): a chunk of
    # many small functions embeds as none of them.
    assert len(spans) == 14
    assert all(s.kind == "function" for s in spans)
    assert spans[0].name == "f0, f1, f2"
    assert all(len(s.name.split(", ")) <= 3 for s in spans)


def test_markdown_sections_nest_by_level() -> None:
    text = (
        "Intro line.\n\n# A\n\ntext a\n\n## B\n\ntext b\n\n```\n# not a heading\n```\n\n"
        "### C\ntext c\n\n## D\ntext d\n\n# E\ntext e\n"
    )
    counter = load_token_counter("all-MiniLM-L6-v2")
    spans = chunk_text(text, "README.md", "markdown", counter)
    check_invariants(text, "README.md", "markdown", counter, spans)
    got = [
        (
            s.start_line,
            s.end_line,
            s.kind,
            s.name,
            s.scope,
            spans[s.parent].name if s.parent is not None else None,
        )
        for s in spans
    ]
    assert got == [
        (1, 1, "preamble", "README.md", (), None),
        (3, 5, "section", "A", (), None),
        (7, 13, "section", "B", ("A",), "A"),
        (15, 16, "section", "C", ("A", "B"), "B"),
        (18, 19, "section", "D", ("A",), "A"),
        (21, 22, "section", "E", (), None),
    ]


def test_markdown_long_section_is_split_in_parts() -> None:
    text = "# Long\n\n" + "\n".join(f"Sentence number {i} of the long section." for i in range(200))
    counter = load_token_counter("all-MiniLM-L6-v2")
    spans = chunk_text(text, "doc.md", "markdown", counter)
    check_invariants(text, "doc.md", "markdown", counter, spans)
    assert len(spans) > 3
    assert all(s.name == "Long" and s.parts == len(spans) for s in spans)
    assert [s.part for s in spans] == list(range(1, len(spans) + 1))


def test_text_windows() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    text = "\n".join(" ".join(rng.choices(words, k=rng.randint(0, 30))) for _ in range(500))
    counter = load_token_counter("all-MiniLM-L6-v2")
    spans = chunk_text(text, "notes.txt", "text", counter)
    check_invariants(text, "notes.txt", "text", counter, spans)
    assert len(spans) > 10
    assert all(s.kind == "text" and s.parent is None for s in spans)
    assert spans[0].name == f"lines 1-{spans[0].end_line}"


def test_unicode_and_crlf_do_not_break_invariants() -> None:
    text = (
        "# -*- coding: utf-8 -*-\r\n"
        + "\n".join(
            f"def f{i}():\n    return '한국어 テキスト ünïcödé {i} 🚀'\r" for i in range(60)
        )
        + "\rx = 1\r"
    )
    counter = counter_with(100)
    for language in ("python", "text", "markdown"):
        spans = chunk_text(text, "u.py", language, counter)
        check_invariants(text, "u.py", language, counter, spans)


def test_language_for_path() -> None:
    cases = {
        "a/b.py": "python",
        "x.mjs": "javascript",
        "x.jsx": "javascript",
        "x.cts": "typescript",
        "x.tsx": "tsx",
        "X.java": "java",
        "m.go": "go",
        "lib.rs": "rust",
        "a.h": "c",
        "a.hpp": "cpp",
        "a.h++": "cpp",
        "P.cs": "c_sharp",
        "Rakefile": "ruby",
        "Gemfile": "ruby",
        "i.php": "php",
        "b.kts": "kotlin",
        "s.sc": "scala",
        "run.bash": "bash",
        "README.markdown": "markdown",
        "notes.txt": "text",
        "Makefile": "text",
    }
    for path, language in cases.items():
        assert language_for_path(path) == language, path
    assert language_for_path("run", "#!/usr/bin/env python3") == "python"
    assert language_for_path("run", "#!/bin/sh") == "bash"


def test_parsers_are_cached_and_load_for_every_language() -> None:
    for language in SAMPLES:
        assert get_parser(language) is get_parser(language)


@pytest.mark.parametrize("statements", [14, 17, 20, 26, 33])
def test_over_budget_function_splits_into_balanced_parts(statements: int) -> None:
    """A function just over budget: no lone signature line, no tiny last part."""
    body = "".join(
        f"    value_{i} = compute_something(value_{i - 1}, {i})\n" for i in range(1, statements)
    )
    text = (
        f"def long_function(alpha, beta):\n    value_0 = alpha + beta\n{body}    return value_0\n"
    )
    counter = counter_with(100)
    spans = chunk_text(text, "x.py", "python", counter)
    check_invariants(text, "x.py", "python", counter, spans)
    assert len(spans) > 1
    lines = [s.end_line - s.start_line + 1 for s in spans]
    assert spans[0].start_line == 1 and lines[0] > 1, "the signature keeps some body"
    assert min(lines) * 3 >= max(lines), f"unbalanced parts: {lines}"
