"""C and C++ declarations lead to their definitions.

A C library documents a function where it declares it, in a header (`zstd.h`, `hist.h`), and
defines it elsewhere without those words. A question about what the function does then finds
the header's prototype, a run of statements that holds no code; the definition, the answer,
ranks lower or not at all. Hybrid search reads the content of the best few such declaration
chunks, finds the functions they declare (`size_t HIST_count(...);`), and lets each defined
function of the repository stand at the declaration's score when that is more than its own,
while the declaration itself counts DECLARATION_WEIGHT as much: definitions ahead of
declarations. Deterministic; one point read of at most DECLARATION_CANDIDATES chunks, and
only when such chunks are among the candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.filters import SearchFilters

LANGUAGES = frozenset({"c", "cpp"})
DECLARATION_CANDIDATES = 30  # of the best candidates, the statement chunks read
DECLARATION_WEIGHT = 0.6  # the declaration's own score
TRANSFER = 1.0  # the share of the declaration's score its definition gets
# ... for the chunk's first declaration; later ones (a header's next prototypes, not the one
# its leading comment documents) get this much of that.
LATER_SHARE = 0.5
# `size_t HIST_count(` at a line's start: type words (qualifiers, pointers), then the name.
_PROTOTYPE = re.compile(
    r"^[ \t]*(?:[A-Za-z_]\w*[ \t*&]+)+[*&]*([A-Za-z_]\w*)[ \t]*\(", re.MULTILINE
)
_NOT_TYPES = frozenset({"return", "if", "while", "for", "switch", "sizeof", "else", "case"})


def declared_names(content: str, leading: bool = False) -> list[str]:
    """Names of the functions a chunk declares without defining: `T f(...);` in order;
    `leading`: only a declaration on the chunk's first non-blank line."""
    out: list[str] = []
    for match in _PROTOTYPE.finditer(content):
        if leading and content[: match.start()].strip():
            break
        head = content[match.start() : match.start(1)].split()
        if not head or head[0] in _NOT_TYPES or head[0].startswith("#"):
            continue
        end = _closing(content, match.end() - 1)
        if end is not None and content[end + 1 :].lstrip()[:1] == ";":
            name = match.group(1)
            if name not in out:
                out.append(name)
    return out


def _closing(text: str, opening: int) -> int | None:
    """Index of the `)` that closes the `(` at `opening`."""
    depth = 0
    for i in range(opening, min(len(text), opening + 2000)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def forward(
    catalog: ChunkCatalog,
    table,
    ordered: list[str],
    scores: dict[str, float],
    filters: SearchFilters,
    is_statements: Callable[[dict | None], bool],
) -> dict[str, str]:
    """Raise, in `scores`, each function defined by a declaration among the best candidates
    (`ordered`) to the declaration's score, and lower the declaration; returns why, by chunk
    id (for `--explain`). `scores` is changed in place; new definitions are added to it."""
    declaring = []
    for cid in ordered[:DECLARATION_CANDIDATES]:
        row = catalog.row(cid)
        if row is not None and row.get("language") in LANGUAGES and is_statements(row):
            declaring.append(cid)
    if not declaring:
        return {}
    why: dict[str, str] = {}
    following = {cid: _next_part(catalog, cid) for cid in declaring}
    contents = catalog.contents(table, [*declaring, *filter(None, following.values())])
    names = catalog.names
    for cid in declaring:
        row = catalog.row(cid)
        score = scores[cid]
        found = False
        declared = declared_names(contents.get(cid, ""))
        if not declared and following[cid]:
            # A long run of statements splits between a comment and what it documents: the
            # chunk holding the comment leads to the declaration opening the next part.
            declared = declared_names(contents.get(following[cid], ""), leading=True)
        for n, name in enumerate(declared):
            share = TRANSFER if n == 0 else TRANSFER * LATER_SHARE
            for slot in names.by_name.get(name.lower(), ()):
                target = names.rows[slot]
                if (
                    target is None
                    or target["name"] != name
                    or target.get("kind") not in ("function", "method")
                    or target["repo"] != row["repo"]
                    or target["path"] == row["path"]
                    or (target.get("part") or 1) != 1
                    or not filters.accepts(target)
                ):
                    continue
                found = True
                raised = score * share
                if raised > scores.get(target["chunk_id"], 0.0):
                    scores[target["chunk_id"]] = raised
                    why[target["chunk_id"]] = (
                        f"declared at {row['path']}:{row['start_line']}, score {raised:.4f}"
                    )
        if found:
            scores[cid] = score * DECLARATION_WEIGHT
            why[cid] = f"declaration of a function defined elsewhere x{DECLARATION_WEIGHT}"
    return why


def _next_part(catalog: ChunkCatalog, chunk_id: str) -> str | None:
    """The part after this one of a long run of statements, if any."""
    group = catalog.groups.group_of.get(chunk_id)
    if group is None:
        return None
    members = catalog.groups.members[group]
    at = members.index(chunk_id)
    return members[at + 1] if at + 1 < len(members) else None
