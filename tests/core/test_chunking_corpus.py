"""Real code: the Python standard library, for invariants and for speed against parsing."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from indexer_core.chunking import chunk_text
from indexer_core.chunking.tokens import load_token_counter
from tests.core.chunk_checks import check_invariants


def _stdlib_files(count: int) -> list[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.stat().st_size < 400_000)
    step = max(1, len(files) // count)
    out = []
    for path in files[::step][:count]:
        out.append((path.name, path.read_text(encoding="utf-8", errors="replace")))
    return out


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str]]:
    files = _stdlib_files(50)
    assert len(files) == 50
    return files


def test_stdlib_invariants(corpus: list[tuple[str, str]]) -> None:
    counter = load_token_counter("all-MiniLM-L6-v2")
    kinds: set[str] = set()
    for name, text in corpus:
        spans = chunk_text(text, f"Lib/{name}", "python", counter)
        check_invariants(text, f"Lib/{name}", "python", counter, spans)
        kinds.update(s.kind for s in spans)
    assert {"module", "class", "method", "function"} <= kinds
