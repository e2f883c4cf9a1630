"""Markdown: one chunk per heading section, nested by heading level.

ATX headings (`#` to `######`) outside fenced code blocks open sections. A section covers
its heading up to the next heading of any level, so sections never overlap; its parent is
the nearest earlier heading of a lower level, and its scope the titles of those ancestors.
Text before the first heading is a "preamble" chunk. Sections over budget are cut into
line windows named `title (part i/n)`.
"""

from __future__ import annotations

import re

from indexer_core.chunking.splitter import FileSplitter
from indexer_core.records import Span

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(row, level, title) of every ATX heading outside fenced code."""
    found: list[tuple[int, int, str]] = []
    fence: str | None = None
    for row, line in enumerate(lines):
        if "`" in line or "~" in line:
            match = _FENCE.match(line)
            if match:
                marker = match.group(1)
                if fence is None:
                    fence = marker
                    continue
                if marker[0] == fence[0] and len(marker) >= len(fence):
                    fence = None
                    continue
        if fence is not None or not line.lstrip(" ").startswith("#"):
            continue
        match = _HEADING.match(line)
        if match:
            title = (match.group(2) or "").strip() or "(untitled)"
            found.append((row, len(match.group(1)), title))
    return found


def chunk_markdown(fs: FileSplitter) -> list[Span]:
    marks = headings(fs.lines)
    first = marks[0][0] if marks else fs.last_row + 1
    if first > 0:
        fs.emit_split(0, first - 1, (), "preamble", fs.module_name, None, ())
    stack: list[tuple[int, str, int | None]] = []  # (level, title, span index)
    for i, (row, level, title) in enumerate(marks):
        end = marks[i + 1][0] - 1 if i + 1 < len(marks) else fs.last_row
        while stack and stack[-1][0] >= level:
            stack.pop()
        parent = stack[-1][2] if stack else None
        scope = tuple(t for _, t, _ in stack)
        index = fs.emit_split(row, end, (), "section", title, parent, scope)
        stack.append((level, title, index))
    return fs.spans
