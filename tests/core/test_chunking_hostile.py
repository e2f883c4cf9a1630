"""Inputs built to break a chunker: deep nesting, huge functions and lines, broken syntax."""

from __future__ import annotations

import random
import time

import pytest

from indexer_core.chunking import chunk_text
from indexer_core.chunking.tokens import TokenCounter, load_token_counter
from tests.core.chunk_checks import check_invariants
from tests.core.chunk_samples import SAMPLES


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return load_token_counter("all-MiniLM-L6-v2")


def _chunk_checked(text: str, path: str, language: str, counter: TokenCounter) -> list:
    spans = chunk_text(text, path, language, counter)
    check_invariants(text, path, language, counter, spans)
    return spans


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("python", "x = " + "[\n" * 10_000 + "1" + "\n]" * 10_000 + "\n"),
        (
            "python",
            "def f():\n" + "".join(" " * (i % 40 + 1) + f"if a{i}:\n" for i in range(3000)),
        ),
        ("javascript", "function f() {\n" + "{\n" * 10_000 + "x();\n" + "}\n" * 10_000 + "}\n"),
        ("javascript", "var x = " + "(" * 10_000 + "1" + ")" * 10_000 + ";\n"),
        ("c", "int f() {\n" + "if (a) {\n" * 10_000 + "}\n" * 10_000 + "}\n"),
    ],
)
def test_deep_nesting(language: str, text: str, counter: TokenCounter) -> None:
    start = time.perf_counter()
    spans = _chunk_checked(text, "deep", language, counter)
    assert spans
    assert time.perf_counter() - start < 20


def test_two_megabyte_function(counter: TokenCounter) -> None:
    body = "".join(
        f"    value_{i} = compute(value_{i - 1}, {i}) + offset\n" for i in range(1, 45_000)
    )
    text = "def big(offset):\n    value_0 = 0\n" + body + "    return value_0\n"
    assert len(text) > 2_000_000
    start = time.perf_counter()
    spans = chunk_text(text, "big.py", "python", counter)
    elapsed = time.perf_counter() - start
    check_invariants(text, "big.py", "python", counter, spans)
    assert elapsed < 15
    assert all(s.kind == "function" for s in spans)
    assert spans[1].scope == ("def big(offset):",)
    assert spans[-1].name == "big" and spans[-1].part == spans[-1].parts == len(spans)


def test_one_300_kb_line(counter: TokenCounter) -> None:
    rng = random.Random(3)
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "x_1", "(", ")", "+", "'"]
    line = " ".join(rng.choices(words, k=60_000))[:300_000]
    for language, text in [
        ("python", "x = '" + line + "'\n"),
        ("javascript", "const s = `" + line + "`;\n"),
        ("text", line),
        ("python", "s = '" + "ab" * 150_000 + "'\n"),
    ]:
        spans = _chunk_checked(text, "long", language, counter)
        assert len(spans) > 1 or language == "python" and "ab" * 10 in text


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_syntax_errors(language: str) -> None:
    counter = TokenCounter(load_token_counter("all-MiniLM-L6-v2").tokenizer, max_tokens=100)
    path, text = SAMPLES[language]
    rng = random.Random(language)
    broken = [
        text.replace("}", "").replace("end", ""),
        text[: len(text) // 2],
        text.replace("(", "{(", 3) + "\n)))}}}{{{ <<< ??? ''' \"\"\" /*\n",
        "".join(c for c in text if rng.random() > 0.05),
    ]
    for variant in broken:
        _chunk_checked(variant, path, language, counter)


@pytest.mark.parametrize("language", [*sorted(SAMPLES), "markdown", "text"])
def test_empty_blank_and_comment_only(language: str, counter: TokenCounter) -> None:
    assert chunk_text("", "f", language, counter) == []
    assert chunk_text(" \n\t\n\n", "f", language, counter) == []
    comment = {"python": "#", "ruby": "#", "bash": "#", "markdown": "", "text": ""}.get(
        language, "//"
    )
    text = "\n".join(f"{comment} comment line {i}" for i in range(200))
    spans = _chunk_checked(text, "f", language, counter)
    assert spans


def test_unknown_language_and_control_characters(counter: TokenCounter) -> None:
    text = "a\x00b\x0cc\x1b[0m\ufeff\u200b x\n" * 300
    for language in ("cobol", "text", "python"):
        _chunk_checked(text, "weird", language, counter)
    # Lone surrogates (from surrogateescape decoding) cannot be tokenized; they must not crash.
    assert chunk_text("x = '\udc80'\n" * 50, "s.py", "python", counter)
