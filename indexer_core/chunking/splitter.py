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
from indexer_core.chunking.spec import METHOD_PARENTS, LanguageSpec
from indexer_core.chunking.tokens import TokenCounter
from indexer_core.records import Span

MAX_CONTAINER_DEPTH = 40  # deeper containers are split like functions
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


class SyntaxChunker:
    """Finds units in a parse tree with a `LanguageSpec` and emits them through a splitter."""

    def __init__(self, splitter: FileSplitter, spec: LanguageSpec, src: bytes) -> None:
        self.fs = splitter
        self.spec = spec
        self.src = src

    # ---- finding units ------------------------------------------------------------

    def collect(
        self, nodes: list[Node], min_row: int, depth: int, parent_kind: str | None
    ) -> tuple[list[Unit], list[Node]]:
        """Units among sibling nodes, and the siblings that are not units."""
        spec = self.spec
        units: list[Unit] = []
        others: list[Node] = []
        lead: list[Node] = []
        prev_end = min_row
        for node in nodes:
            start = node.start_point[0]
            if node.type in spec.leading:
                if lead and start > end_row(lead[-1]) + 1:
                    others.extend(lead)
                    lead = []
                lead.append(node)
                continue
            unit = self.classify(node, depth, parent_kind) if start > prev_end else None
            if lead:
                if (
                    unit is not None
                    and end_row(lead[-1]) + 1 >= start
                    and lead[0].start_point[0] > prev_end
                ):
                    unit.start = lead[0].start_point[0]
                    unit.nodes = (*lead, *unit.nodes)
                else:
                    others.extend(lead)
                lead = []
            if unit is None:
                others.append(node)
            else:
                units.append(unit)
            prev_end = max(prev_end, end_row(node))
        others.extend(lead)
        return units, others

    def classify(self, node: Node, depth: int, parent_kind: str | None) -> Unit | None:
        spec = self.spec
        inner = node
        for _ in range(8):
            if inner.type not in spec.wrappers:
                break
            field = spec.wrappers[inner.type]
            if field is None:
                nxt = inner.named_children[-1] if inner.named_child_count else None
            else:
                nxt = inner.child_by_field_name(field)
            if nxt is None:
                return None
            inner = nxt
        typ = inner.type
        is_container = typ in spec.containers
        if is_container:
            kind = spec.containers[typ]
        elif typ in spec.leaves:
            kind = spec.leaves[typ]
        elif spec.extra is not None:
            found = spec.extra(inner, self.src)
            if found is None:
                return None
            kind, name = found
            return self.make_unit(node, inner, kind, name, None, [], parent_kind)
        else:
            return None
        if spec.kind_of is not None:
            kind = spec.kind_of(inner, kind)
        name = spec.name(inner, self.src)
        members: list[Unit] | None = None
        others: list[Node] = []
        if is_container and depth < MAX_CONTAINER_DEPTH:
            members, others = self.collect(
                spec.members(inner), inner.start_point[0], depth + 1, kind
            )
            if not members:
                members = None
        return self.make_unit(node, inner, kind, name, members, others, parent_kind)

    def make_unit(
        self,
        node: Node,
        inner: Node,
        kind: str,
        name: str,
        members: list[Unit] | None,
        others: list[Node],
        parent_kind: str | None,
    ) -> Unit:
        if kind == "function" and parent_kind in METHOD_PARENTS:
            kind = "method"
        name = " ".join(name.split())[:SIGNATURE_LIMIT] or "<anonymous>"
        signature = self.fs.lines[inner.start_point[0]].strip()[:SIGNATURE_LIMIT]
        return Unit(
            kind, name, node.start_point[0], end_row(node), (node,), signature, members, others
        )

    # ---- emitting -----------------------------------------------------------------

    def run(self, root: Node) -> list[Span]:
        fs = self.fs
        units, others = self.collect(root.named_children, -1, 0, None)
        pieces = self.pieces(0, fs.last_row, units, others)
        parent: int | None = None
        first_unit = units[0].start if units else fs.last_row + 1
        if pieces and isinstance(pieces[0], tuple) and pieces[0][0] < first_unit:
            s, e, nodes = pieces.pop(0)
            parent = fs.emit_split(s, e, nodes, "module", fs.module_name, None, ())
        self.emit_level(pieces, parent, (), "module", fs.module_name)
        return fs.spans

    def pieces(
        self, start: int, end: int, units: list[Unit], others: list[Node]
    ) -> list[Unit | Atom]:
        """Units in order, with the non-blank rows between them as gap atoms."""
        fs = self.fs
        out: list[Unit | Atom] = []
        k = 0

        def gap(s: int, e: int) -> None:
            nonlocal k
            trimmed = fs.trim(s, e) if s <= e else None
            while k < len(others) and others[k].start_point[0] < s:
                k += 1
            nodes = []
            while k < len(others) and others[k].start_point[0] <= e:
                nodes.append(others[k])
                k += 1
            if trimmed is not None:
                out.append((trimmed[0], trimmed[1], tuple(nodes)))

        row = start
        for unit in units:
            gap(row, unit.start - 1)
            out.append(unit)
            row = unit.end + 1
        gap(row, end)
        return out

    def emit_level(
        self,
        pieces: list[Unit | Atom],
        parent: int | None,
        scope: tuple,
        gap_kind: str,
        gap_name: str,
    ) -> None:
        """Emit siblings in order, merging runs of small units."""
        fs = self.fs
        group: list[Unit] = []
        pieces = self.absorb_small_gaps(pieces)

        def flush() -> None:
            if len(group) == 1:
                self.emit_unit(group[0], parent, scope)
            elif group:
                kinds = {u.kind for u in group}
                kind = kinds.pop() if len(kinds) == 1 else "mixed"
                fs.add(group[0].start, group[-1].end, kind, _join_names(group), parent, scope)
            group.clear()

        for piece in pieces:
            if isinstance(piece, Unit):
                cost = fs.tokens(piece.start, piece.end)
                if cost < fs.merge_below:
                    if group and (
                        len(group) >= MERGE_MAX_UNITS
                        or fs.tokens(group[0].start, piece.end) > fs.merge_max
                    ):
                        flush()
                    group.append(piece)
                    continue
                flush()
                self.emit_unit(piece, parent, scope)
                continue
            flush()
            s, e, nodes = piece
            if fs.tokens(s, e) <= TRIVIAL_TOKENS and fs.extend_last(e):
                continue
            fs.emit_split(s, e, nodes, gap_kind, gap_name, parent, scope)
        flush()

    def absorb_small_gaps(self, pieces: list[Unit | Atom]) -> list[Unit | Atom]:
        """Let small gaps between units join a neighbouring unit instead of being chunks.

        A section comment (`# ErrorHandler methods`) introduces what follows it; a stray
        statement (`dispatch[bool] = dump_bool`, `__all__ += [...]`) most often completes what
        precedes it. As chunks of their own they are one-line search results that mean nothing
        alone. A gap joins only a unit it fits beside within the budget (a container over
        budget takes a preceding comment into its header).
        """
        fs = self.fs
        pieces = [part for piece in pieces for part in self.split_trailing_comments(piece)]
        out: list[Unit | Atom] = []
        pending: Atom | None = None  # a gap waiting to join the next unit
        for i, piece in enumerate(pieces):
            if isinstance(piece, Unit):
                if pending is not None:
                    piece = replace(piece, start=pending[0], nodes=(*pending[2], *piece.nodes))
                    pending = None
                out.append(piece)
                continue
            s, e, nodes = piece
            if fs.tokens(s, e) >= fs.min_chunk:
                out.append(piece)
                continue
            before = out[-1] if out and isinstance(out[-1], Unit) else None
            after = pieces[i + 1] if i + 1 < len(pieces) else None
            after = after if isinstance(after, Unit) else None
            fits_before = before is not None and fs.tokens(before.start, e) <= fs.budget
            fits_after = after is not None and (
                after.members is not None or fs.tokens(s, after.end) <= fs.budget
            )
            comment = bool(nodes) and all(n.type in self.spec.leading for n in nodes)
            if fits_after and (comment or not fits_before):
                pending = piece
            elif fits_before:
                out[-1] = replace(before, end=e, nodes=(*before.nodes, *nodes))
            else:
                out.append(piece)
        return out

    def split_trailing_comments(self, piece: Unit | Atom) -> list[Unit | Atom]:
        """A gap of code then comments is two gaps: the code ends one unit, the comments open the next."""
        if isinstance(piece, Unit):
            return [piece]
        s, e, nodes = piece
        k = len(nodes)
        while k > 0 and nodes[k - 1].type in self.spec.leading:
            k -= 1
        if k == 0 or k == len(nodes):
            return [piece]
        cut = nodes[k].start_point[0]
        head = self.fs.trim(s, cut - 1)
        if head is None or cut > e:
            return [piece]
        return [(head[0], head[1], nodes[:k]), (cut, e, nodes[k:])]

    def emit_unit(self, unit: Unit, parent: int | None, scope: tuple) -> None:
        fs = self.fs
        if fs.tokens(unit.start, unit.end) <= fs.budget or unit.members is None:
            fs.emit_split(
                unit.start,
                unit.end,
                unit.nodes,
                unit.kind,
                unit.name,
                parent,
                scope,
                unit.signature,
            )
            return
        # A container over budget: header rows, then members as its children.
        first = unit.members[0].start
        header_end = first - 1
        trimmed = fs.trim(unit.start, header_end) if unit.start <= header_end else None
        header: int | None
        if trimmed is None:
            header = fs.add(unit.start, unit.start, unit.kind, unit.name, parent, scope)
            body_start = unit.start + 1
        else:
            header = fs.emit_split(
                trimmed[0], trimmed[1], unit.nodes, unit.kind, unit.name, parent, scope
            )
            body_start = first
        inner_scope = scope + (unit.name,)
        pieces = self.pieces(body_start, unit.end, unit.members, unit.body_nodes)
        self.emit_level(pieces, header, inner_scope, unit.kind, unit.name)


def _join_names(units: list[Unit]) -> str:
    names: list[str] = []
    length = 0
    for unit in units:
        if length + len(unit.name) > NAME_LIMIT and names:
            names.append("…")
            break
        names.append(unit.name)
        length += len(unit.name) + 2
    return ", ".join(names)
