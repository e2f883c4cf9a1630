"""Invariants every chunking of every file must satisfy, shared by the chunking tests."""

from __future__ import annotations

from indexer_core.chunking.header import embed_text, fitted_header, name_words
from indexer_core.chunking.tokens import TokenCounter
from indexer_core.records import Span

TOP_KINDS = {"module", "preamble", "text"}


def check_invariants(
    text: str, path: str, language: str, counter: TokenCounter, spans: list[Span]
) -> None:
    lines = text.split("\n")
    # Token bound: the exact text that will be embedded fits the model.
    texts = [
        embed_text(
            fitted_header(path, language, s.scope, counter, name_words(s.kind, s.name)), s.content
        )
        for s in spans
    ]
    for span, n in zip(spans, counter.count_many(texts)):
        assert n <= counter.budget, (span.start_line, span.end_line, span.name, n)
    covered = bytearray(len(lines) + 2)
    prev: Span | None = None
    for i, span in enumerate(spans):
        assert 1 <= span.start_line <= span.end_line <= len(lines), span
        exact = "\n".join(lines[span.start_line - 1 : span.end_line])
        if span.content != exact:  # only a slice of one over-long line may differ
            assert span.start_line == span.end_line, span
            assert span.content and span.content in exact, span
        covered[span.start_line : span.end_line + 1] = b"\x01" * (
            span.end_line - span.start_line + 1
        )
        # No overlap: spans come in file order; only slices of one line share it.
        if prev is not None:
            same_line = prev.start_line == prev.end_line == span.start_line == span.end_line
            assert prev.end_line < span.start_line or same_line, (prev, span)
        prev = span
        if span.parent is not None:
            assert 0 <= span.parent < i, span
            parent = spans[span.parent]
            assert span.scope[: len(parent.scope)] == parent.scope, (parent, span)
            if parent.kind not in TOP_KINDS:
                assert len(span.scope) > len(parent.scope), (parent, span)
                assert span.scope[len(parent.scope)] == parent.name, (parent, span)
    for row, line in enumerate(lines, 1):
        if line.strip():
            assert covered[row], f"line {row} not covered: {line[:80]!r}"
