"""The fast token counts the chunker relies on agree exactly with the model's tokenizer."""

from __future__ import annotations

import random
import re
import string
import sysconfig
from itertools import pairwise
from pathlib import Path

import pytest

from indexer_core.chunking.header import fitted_header, format_header, name_words
from indexer_core.chunking.linecost import prefix_costs, text_tokens
from indexer_core.chunking.tokens import TokenCounter, load_token_counter
from indexer_core.chunking.wordpiece import WordPieceVocab

_WORD = re.compile(r"[A-Za-z0-9]+")


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return load_token_counter("all-MiniLM-L6-v2")


def _stdlib_texts(count: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    return [p.read_text(encoding="utf-8", errors="replace") for p in files[:: len(files) // count]]


def test_wordpiece_counts_match_the_tokenizer(counter: TokenCounter) -> None:
    vocab = WordPieceVocab.from_tokenizer(counter.tokenizer)
    assert vocab is not None and vocab.lowercase
    rng = random.Random(3)
    words = {w for text in _stdlib_texts(40) for w in _WORD.findall(text)}
    alphabet = string.ascii_letters + string.digits
    words |= {"".join(rng.choices(alphabet, k=rng.randint(1, 30))) for _ in range(3000)}
    words |= {"x" * 99, "x" * 100, "x" * 101, "A" * 250, "0" * 120}
    words = sorted(words)
    expected = counter.count_many(words)
    got = [vocab.count(w.lower().encode("ascii")) for w in words]
    wrong = [(w, g, e) for w, g, e in zip(words, got, expected) if g != e]
    assert not wrong, wrong[:10]
    assert max(expected) > 5  # the sample holds words that split into many pieces


def test_line_prefix_costs_are_exact(counter: TokenCounter) -> None:
    texts = _stdlib_texts(8)
    texts.append("naïve = 'café'  # ünïcödé\nx = 1\r\n\ttab\x0bvt\n\n" + "日本語 テキスト\n" * 3)
    texts.append("a\x00b = 1\nplain_line(x)\n")
    for text in texts:
        lines = text.split("\n")
        prefix = prefix_costs(lines, counter, text)
        expected = counter.count_many(lines)
        assert [b - a for a, b in pairwise(prefix)] == expected


def test_shortened_headers_are_counted_exactly_without_the_tokenizer(
    counter: TokenCounter, monkeypatch
) -> None:
    """`header_tokens` counts a header with the ellipsis of a shortened path or scope from
    the word caches; the count, and so the header `fitted_header` picks, is the tokenizer's."""
    from indexer_core.chunking import header as header_module
    from indexer_core.chunking.header import ELLIPSIS, header_tokens

    paths = ["src/pkg/" + "deep/" * 30 + "m.py", "lib/a_very_long_module_name_for_tests.py"]
    scopes = [("Outer", "Inner", "read"), ("X",) * 40, ("HTTPServer", "def handle(self):")]
    headers = [
        format_header(f"{ELLIPSIS}{path[cut:]}", "python", [ELLIPSIS, *scope[1:]], "read all")
        for path in paths
        for cut in (0, 5, 17)
        for scope in scopes
    ]
    headers += [f"a{ELLIPSIS}b {ELLIPSIS}{ELLIPSIS} x{ELLIPSIS}\n{ELLIPSIS}", ELLIPSIS]
    for header in headers:
        assert header_tokens(counter, header) == counter.count(header), header
    fitted = [fitted_header(p, "python", s, counter, "read all") for p in paths for s in scopes]
    monkeypatch.setattr(header_module, "header_tokens", lambda c, text: c.count(text))
    assert fitted == [
        fitted_header(p, "python", s, counter, "read all") for p in paths for s in scopes
    ]
    assert any(ELLIPSIS in h for h in fitted)


def test_header_counts_are_exact(counter: TokenCounter) -> None:
    scopes = [(), ("MyClass",), ("Outer", "Inner", "método_ñ"), ("a" * 300,), ("X",) * 40]
    for scope in scopes:
        header = format_header("src/pkg/module_name.py", "python", scope)
        assert text_tokens(counter, header) == counter.count(header)
        fitted = fitted_header("src/pkg/" + "deep/" * 30 + "m.py", "python", scope, counter)
        assert counter.count(fitted) <= 48
        for name in ("read all", name_words("method", "x" * 90), name_words("function", "aB" * 80)):
            named = fitted_header(
                "src/pkg/" + "deep/" * 30 + "m.py", "python", scope, counter, name
            )
            assert counter.count(named) <= 48, (scope, name)
    assert "name: http client send all, close\n" in format_header(
        "a.py", "python", (), name_words("method", "HTTPClient.sendAll, close")
    )
    assert name_words("module", "a.py") == "" and name_words("text", "lines 1-40") == ""
