"""The one algorithm that turns a file's units into chunks within the token budget.

Rules (rows are 0-based here, lines 1-based in the spans):

* Chunks never overlap, with one exception: pieces of one over-long line split by
  characters share that line. A container that does not fit emits a *header* chunk that
  covers only its own lines before the first member (signature, docstring, fields); lines
  between members and after the last one become chunks of the container's kind, except
  small ones (under a quarter of the budget): a comment joins the unit after it, code the
  unit before it, when the unit fits the budget with it (`absorb_small_gaps`); and trivial
  ones (a closing brace, `end`) join the chunk before them.
* Every non-blank line lies in some chunk; leading and trailing blank lines are trimmed.
* A chunk's cost is the sum of its lines' token counts (exact for WordPiece), so it is
  checked in O(1) with prefix sums; the budget for content is the model's budget minus
  the header reserve, so any fitted header fits beside it.
* Splitting walks the syntax tree only where a range is over budget, with an explicit
  stack, so deep nesting and huge functions cost linear time and no recursion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tree_sitter import Node

from indexer_core.chunking.header import HEADER_TOKEN_RESERVE
from indexer_core.chunking.linecost import prefix_costs, safe_count
from indexer_core.chunking.tokens import TokenCounter
from indexer_core.records import Span

MAX_CONTAINER_DEPTH = 40  # deeper containers are split like functions
MAX_OPEN_DEPTH = 8  # block statements nested deeper stay whole (`SyntaxChunker.opened`)
NAME_LIMIT = 100  # characters of a merged chunk's name
TRIVIAL_TOKENS = 3  # a gap this small ("}", "end") joins the chunk before it
# Runs of small sibling units (under MERGE_BELOW x budget tokens each) share a chunk, at most
# MERGE_MAX_UNITS of them and MERGE_MAX_SHARE x budget tokens: a chunk of many small methods
# embeds as none of them (bench/retrieval_eval.py measured the dilution).
MERGE_BELOW = 0.125
MERGE_MAX_UNITS = 3
MERGE_MAX_SHARE = 0.5
SIGNATURE_LIMIT = 160

# A piece that may still be refined: rows and the syntax nodes it holds.
Atom = tuple[int, int, tuple[Node, ...]]


def content_budget(counter: TokenCounter) -> int:
    """Tokens left for content once the largest possible header is in."""
    return max(1, counter.budget - HEADER_TOKEN_RESERVE)


def end_row(node: Node) -> int:
    """The last row holding text of `node` (a node ending at column 0 ends the row before)."""
    row, col = node.end_point
    if col == 0 and row > node.start_point[0]:
        return row - 1
    return row


@dataclass
class Unit:
    kind: str
    name: str
    start: int
    end: int
    nodes: tuple[Node, ...]  # leading comments and the (wrapped) unit node
    signature: str
    members: list[Unit] | None  # None for leaves
    body_nodes: list[Node]  # a container's member nodes that are not units


class FileSplitter:
    """State for one file: its lines, their token costs and the spans emitted so far."""

    def __init__(self, text: str, path: str, counter: TokenCounter) -> None:
        self.path = path
        self.counter = counter
        self.lines = text.split("\n")
        self.last_row = len(self.lines) - 1
        self.prefix = prefix_costs(self.lines, counter, text)
        self.budget = content_budget(counter)
        self.min_chunk = max(1, self.budget // 4)
        self.merge_below = max(1, int(self.budget * MERGE_BELOW))
        self.merge_max = max(1, int(self.budget * MERGE_MAX_SHARE))
        self.spans: list[Span] = []
        self.module_name = path.rsplit("/", 1)[-1] or "<module>"

    # ---- costs and rows -------------------------------------------------------------

    def tokens(self, start: int, end: int) -> int:
        return self.prefix[end + 1] - self.prefix[start]

    def blank(self, row: int) -> bool:
        return not self.lines[row].strip()

    def trim(self, start: int, end: int) -> tuple[int, int] | None:
        while start <= end and self.blank(start):
            start += 1
        while end >= start and self.blank(end):
            end -= 1
        return (start, end) if start <= end else None

    # ---- emitting -----------------------------------------------------------------

    def add(
        self,
        start: int,
        end: int,
        kind: str,
        name: str,
        parent: int | None,
        scope: tuple,
        part: int = 1,
        parts: int = 1,
    ) -> int:
        content = "\n".join(self.lines[start : end + 1])
        self.spans.append(Span(start + 1, end + 1, kind, name, content, parent, scope, part, parts))
        return len(self.spans) - 1

    def extend_last(self, end: int) -> bool:
        """Let the last chunk take rows up to `end` (a trivial tail), if it still fits."""
        if not self.spans:
            return False
        last = self.spans[-1]
        start = last.start_line - 1
        if last.end_line - 1 >= end or self.tokens(start, end) > self.budget:
            return False
        if last.content != "\n".join(self.lines[start : last.end_line]):
            return False  # a slice of a line: leave it alone
        content = "\n".join(self.lines[start : end + 1])
        self.spans[-1] = replace(last, end_line=end + 1, content=content)
        return True

    def emit_split(
        self,
        start: int,
        end: int,
        nodes: tuple[Node, ...],
        kind: str,
        name: str,
        parent: int | None,
        scope: tuple,
        signature: str = "",
    ) -> int | None:
        """Emit rows start..end as one chunk or as parts; returns the first chunk's index."""
        pieces = self.split_rows(start, end, nodes)
        first: int | None = None
        total = len(pieces)
        for i, (s, e, cut) in enumerate(pieces, 1):
            part_scope = scope + (signature,) if signature and i > 1 else scope
            if cut is None:
                idx = self.add(s, e, kind, name, parent, part_scope, i, total)
            else:
                line = self.lines[s]
                text = line[cut[0] : cut[1]]
                self.spans.append(
                    Span(s + 1, s + 1, kind, name, text, parent, part_scope, i, total)
                )
                idx = len(self.spans) - 1
            if first is None:
                first = idx
        return first

    # ---- splitting a range ------------------------------------------------------------

    def split_rows(
        self, start: int, end: int, nodes: tuple[Node, ...]
    ) -> list[tuple[int, int, tuple[int, int] | None]]:
        """Cover rows start..end with pieces within budget, cutting between syntax nodes.

        Returns (start, end, None) row ranges, trimmed of blank rows, or (row, row, (a, b))
        character slices of a single over-long line.
        """
        budget = self.budget
        total = self.tokens(start, end)
        if total <= budget:  # the common case: it fits as it is
            trimmed = self.trim(start, end)
            return [] if trimmed is None else [(trimmed[0], trimmed[1], None)]
        # Balanced parts: aim each at an equal share of the range (a little slack for the
        # syntax cuts), so a range just over budget is not one full part and a tiny tail
        # or a lone signature line. A single line up to the budget still stays whole.
        n_parts = -(-total // budget)
        target = min(budget, -(-total * 9 // (n_parts * 8)))
        out: list[tuple[int, int, tuple[int, int] | None]] = []
        stack: list[Atom] = [(start, end, nodes)]
        cur: list[int] | None = None

        def flush() -> None:
            if cur is not None:
                trimmed = self.trim(cur[0], cur[1])
                if trimmed is not None:
                    out.append((trimmed[0], trimmed[1], None))

        while stack:
            a_s, a_e, a_nodes = stack.pop()
            if cur is not None and self.tokens(cur[0], a_e) <= target:
                cur[1] = a_e
                continue
            cost = self.tokens(a_s, a_e)
            if cost <= target or (a_s == a_e and cost <= budget):
                flush()
                cur = [a_s, a_e]
                continue
            if a_s == a_e:
                flush()
                cur = None
                out.extend((a_s, a_s, cut) for cut in self.char_slices(self.lines[a_s]))
                continue
            stack.extend(reversed(self.refine(a_s, a_e, a_nodes)))
        flush()
        # A small last part joins the one before when both fit together.
        if len(out) > 1 and out[-1][2] is None and out[-2][2] is None:
            (p_s, _p_e, _), (l_s, l_e, _) = out[-2], out[-1]
            if self.tokens(l_s, l_e) < self.min_chunk and self.tokens(p_s, l_e) <= budget:
                out[-2:] = [(p_s, l_e, None)]
        return out

    def refine(self, a_s: int, a_e: int, nodes: tuple[Node, ...]) -> list[Atom]:
        """Cut an over-budget atom at rows no syntax node spans, descending as needed."""
        while True:
            if not any(n.child_count for n in nodes):
                return [(r, r, ()) for r in range(a_s, a_e + 1)]
            items: list[Node] = []
            for n in nodes:
                items.extend(n.children if n.child_count else (n,))
            segments: list[Atom] = []
            seg_start, seg_nodes = a_s, []
            max_end = a_s - 1
            for item in items:
                i_s = item.start_point[0]
                e_row, e_col = item.end_point
                i_e = e_row - 1 if e_col == 0 and e_row > i_s else e_row  # end_row(item)
                if i_e < a_s or i_s > a_e:
                    continue
                if i_s < a_s:  # noqa: PLR1730 - a comparison is cheaper than a call here
                    i_s = a_s
                if i_e > a_e:  # noqa: PLR1730
                    i_e = a_e
                if i_s > max_end and i_s > seg_start:
                    segments.append((seg_start, i_s - 1, tuple(seg_nodes)))
                    seg_start, seg_nodes = i_s, []
                seg_nodes.append(item)
                if i_e > max_end:  # noqa: PLR1730
                    max_end = i_e
            segments.append((seg_start, a_e, tuple(seg_nodes)))
            if len(segments) > 1:
                return segments
            nodes = segments[0][2]

    def char_slices(self, line: str) -> list[tuple[int, int]]:
        """Slices of one line, each within budget, preferably cut after whitespace."""
        out: list[tuple[int, int]] = []
        budget, counter = self.budget, self.counter
        pos, n = 0, len(line)
        guess = 4 * budget
        while pos < n:
            length = min(n - pos, guess)
            while True:
                count = safe_count(counter, line[pos : pos + length])
                if count <= budget or length == 1:
                    break
                length = max(1, min(length - 1, int(length * budget / count * 0.9)))
            stop = pos + length
            if stop < n:
                piece = line[pos:stop]
                cut = max(piece.rfind(" "), piece.rfind("\t"))
                if cut >= length // 2 and safe_count(counter, piece[: cut + 1]) <= budget:
                    stop = pos + cut + 1
            if line[pos:stop].strip():
                out.append((pos, stop))
            guess = max(length, 16)
            pos = stop
        return out

    # ---- line windows -----------------------------------------------------------------

    def windows(self, kind: str = "text") -> list[Span]:
        """Greedy windows of whole lines; the fallback for text and unparsable code."""
        for s, e, cut in self.split_rows(0, self.last_row, ()):
            name = f"lines {s + 1}-{e + 1}" if cut is None else f"line {s + 1}"
            if cut is None:
                self.add(s, e, kind, name, None, ())
            else:
                text = self.lines[s][cut[0] : cut[1]]
                self.spans.append(Span(s + 1, s + 1, kind, name, text, None, ()))
        return self.spans
