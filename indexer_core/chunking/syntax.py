"""Walking a syntax tree into units and emitting them through the `FileSplitter`.

A `SyntaxChunker` classifies each named node by the language's `LanguageSpec` (function,
class, container, gap), merges small neighbours, gives gaps to the unit they belong with
(`absorb_small_gaps`), and emits each unit whole or, when it is over budget, in parts.
"""

from __future__ import annotations

from dataclasses import replace

from tree_sitter import Node

from indexer_core.chunking.spec import METHOD_PARENTS, LanguageSpec
from indexer_core.chunking.splitter import (
    MAX_CONTAINER_DEPTH,
    MAX_OPEN_DEPTH,
    MERGE_MAX_UNITS,
    NAME_LIMIT,
    SIGNATURE_LIMIT,
    TRIVIAL_TOKENS,
    Atom,
    FileSplitter,
    Unit,
    end_row,
)
from indexer_core.records import Span


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
        units: list[Unit] = []
        others: list[Node] = []
        lead: list[Node] = []
        lead_opens = False  # the last lead node is a clause's keyword or condition
        prev_end = min_row
        unit_end = min_row  # where the last unit ends: a unit never starts on that row
        for node, opens in self.opened(_without_errors(nodes), 0):
            start = node.start_point[0]
            if opens or self.leads(node):
                if lead and not self.adjacent(lead[-1], lead_opens, start):
                    others.extend(lead)
                    lead = []
                lead.append(node)
                lead_opens = opens
                continue
            unit = self.classify(node, depth, parent_kind) if start > unit_end else None
            if unit is not None and start <= prev_end:
                # Statements end on the unit's first row: a prefix the parser split off (C's
                # `HINT_INLINE UNUSED_ATTR void f(...)` parses as a declaration then a
                # function), which the unit takes in rather than being lost to them.
                taken = 0
                while taken < len(others) and end_row(others[-1 - taken]) >= start:
                    taken += 1
                if taken and not lead:
                    unit.start = min(n.start_point[0] for n in others[-taken:])
                    unit.nodes = (*others[-taken:], *unit.nodes)
                    del others[-taken:]
                else:
                    unit = None
            if lead:
                if (
                    unit is not None
                    and self.adjacent(lead[-1], lead_opens, start)
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
                unit_end = end_row(node)
            prev_end = max(prev_end, end_row(node))
        others.extend(lead)
        return units, others

    def leads(self, node: Node) -> bool:
        """A node that belongs to the unit below it (`spec.leading`), also inside a wrapper:
        TypeScript's `export function f(a: A): R` overload signatures above `f`'s body."""
        leading = self.spec.leading
        if node.type in leading:
            return True
        field = self.spec.wrappers.get(node.type, "")
        if field == "" or field is None:
            return False
        inner = node.child_by_field_name(field)
        return inner is not None and inner.type in leading

    def adjacent(self, lead: Node, opens: bool, start: int) -> bool:
        """Whether a lead node reaches the row `start`: a comment must touch it, a clause's
        `if ...:` or `else:` may have blank rows before it."""
        after = end_row(lead) + 1
        return after >= start or (opens and self.fs.trim(after, start - 1) is None)

    def opened(self, nodes: list[Node], depth: int) -> list[tuple[Node, bool]]:
        """Siblings with each block statement that holds units (`spec.blocks`) replaced by its
        parts: (keyword, condition or punctuation node, True) and (statement, False)."""
        spec = self.spec
        if not spec.blocks:
            return [(node, False) for node in nodes]
        out: list[tuple[Node, bool]] = []
        for node in nodes:
            opens = node.type in spec.blocks and depth < MAX_OPEN_DEPTH
            if not opens or not self.holds_units(node, depth):
                out.append((node, False))
                continue
            for child in node.children:
                if child.type in spec.bodies:
                    seen = False  # `{` opens what follows; `}` is a trailing statement
                    for part in child.children:
                        if part.is_named:
                            out.extend(self.opened([part], depth + 1))
                            seen = True
                        else:
                            out.append((part, not seen))
                elif child.type in spec.blocks:
                    out.extend(self.opened([child], depth + 1))
                else:
                    out.append((child, True))
        return out

    def holds_units(self, node: Node, depth: int) -> bool:
        """Whether a block statement's bodies (or its clauses') hold a unit node."""
        spec = self.spec
        for child in node.children:
            if child.type in spec.bodies:
                for part in child.named_children:
                    typ = part.type
                    if typ in spec.containers or typ in spec.leaves or typ in spec.wrappers:
                        return True
                    nested = typ in spec.blocks and depth + 1 < MAX_OPEN_DEPTH
                    if nested and self.holds_units(part, depth + 1):
                        return True
            elif child.type in spec.blocks and self.holds_units(child, depth):
                return True
        return False

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
        bound_name = ""
        if spec.bound is not None:
            found_bound = spec.bound(inner, self.src)
            if found_bound is not None:
                inner, bound_name = found_bound
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
        if bound_name and name == "<anonymous>":
            name = bound_name
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
        """A gap of code then comments is two gaps: the code ends one unit, the comments open the
        next."""
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


def _without_errors(nodes: list[Node]) -> list[Node]:
    """Siblings with each ERROR node replaced by its named children. A parser that stumbles
    once (a C header's `extern "C" {` behind `#ifdef __cplusplus`, an unknown macro before a
    function) can wrap the rest of the file in one ERROR node that still holds well-formed
    functions; without this they were one long run of module statements."""
    if not any(node.type == "ERROR" for node in nodes):
        return nodes
    out: list[Node] = []
    for node in nodes:
        if node.type == "ERROR" and node.named_child_count:
            out.extend(_without_errors(node.named_children))
        else:
            out.append(node)
    return out


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
