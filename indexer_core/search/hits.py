"""Search results: loading the hits of a ranking as spans a person reads (a long unit's best
part, at most MAX_HIT_LINES lines, its scope named) and reading one chunk with its parent and
children."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from indexer_core.search.catalog import HIT_META_COLUMNS, ChunkCatalog
from indexer_core.search.filters import SearchFilters
from indexer_core.search.index_view import OpenIndex, open_index
from indexer_core.storage import tables as storage

# What a hit reads: the metadata the catalogue holds, and the content.
_HIT_COLUMNS = [*HIT_META_COLUMNS, "content"]
# A result is a span a person reads: longer chunks show their best window of this many lines
# (the whole chunk with `expand`, or `get_chunk`).
MAX_HIT_LINES = 60


@dataclass
class SearchHit:
    chunk_id: str
    repo: str
    path: str
    start_line: int
    end_line: int
    kind: str
    name: str
    language: str
    score: float
    content: str
    parent_id: str = ""
    parts: int = 1  # >1: one of the parts of a long unit (`part` is the one shown)
    scope: str = ""  # the enclosing units, outermost first
    part: int = 1
    unit_start: int = 0  # the whole unit's lines (a split unit spans all its parts)
    unit_end: int = 0
    rank_score: float = 0.0  # the ranking stage's score (files, roles, definitions)
    also: list[str] = field(default_factory=list)  # other matching chunks in the same file
    why: dict | None = None  # with `explain`: the rankings and weights behind the rank

    def snippet(self, lines: int = 3) -> str:
        body = [line for line in self.content.split("\n") if line.strip()]
        return "\n".join(body[:lines])

    def location(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}"

    def to_dict(self) -> dict:
        out = {**asdict(self), "location": self.location(), "snippet": self.snippet()}
        if self.why is None:
            del out["why"]
        return out


def load_hits(
    index: OpenIndex,
    catalog: ChunkCatalog,
    picked: list[tuple[str, int | None]],
    scores: dict[str, float],
    filters: SearchFilters,
    k: int,
    expand: bool = False,
    terms: frozenset[str] = frozenset(),
) -> list[SearchHit]:
    """The first k picks that pass the path glob, as hits: the picked chunk (a long unit's
    best part), cut to its best MAX_HIT_LINES window for `terms`; with `expand`, the whole
    unit (every part, uncut).

    Locations and names come from the catalog, so only the content of the chosen hits is
    read (by row id). A chunk the catalog lacks (written after it was loaded) is read whole.
    """
    table = index.table(storage.CHUNKS)
    hits: list[SearchHit] = []
    start = 0
    while len(hits) < k and start < len(picked):
        window = picked[start : start + max(k - len(hits), 1) * 2]
        start += len(window)
        meta = {cid: catalog.meta(cid) for cid, _ in window}
        unknown = [cid for cid, row in meta.items() if row is None]
        if unknown:
            rows = storage.read_rows(
                table, storage.id_list_filter("chunk_id", unknown), _present(table)
            )
            meta.update({row["chunk_id"]: row for row in rows.to_pylist()})
        chosen = [
            (cid, group)
            for cid, group in window
            if meta.get(cid) and filters.accepts_path(meta[cid]["path"])
        ]
        chosen = chosen[: k - len(hits)]
        members = [
            m
            for cid, group in chosen
            for m in (catalog.groups.members[group] if expand and group is not None else [cid])
        ]
        contents = catalog.contents(table, [m for m in members if m in catalog.row_of])
        contents.update(
            {cid: row["content"] for cid, row in meta.items() if row and "content" in row}
        )
        for cid, group in chosen:
            if cid not in contents:
                continue  # deleted since the catalog was loaded
            fields = {c: v for c, v in meta[cid].items() if c in _FIELDS}
            hit = SearchHit(score=scores[cid], **{**fields, "content": contents[cid]})
            hit.parts, hit.part = hit.parts or 1, hit.part or 1
            hit.unit_start, hit.unit_end = hit.start_line, hit.end_line
            if group is not None:
                hit.unit_start, hit.unit_end = catalog.groups.spans[group]
                if expand:
                    parts = [m for m in catalog.groups.members[group] if m in contents]
                    hit.start_line, hit.end_line = hit.unit_start, hit.unit_end
                    hit.content = "\n".join(contents[m] for m in parts)
            if not expand:
                _cut(hit, terms)
            hits.append(hit)
    return hits


_FIELDS = {f for f in SearchHit.__dataclass_fields__ if f not in ("score", "content")}


def _present(table) -> list[str]:
    """The hit columns this table has (`part`/`parts` came later)."""
    return [c for c in _HIT_COLUMNS if c in table.schema.names]


def _cut(hit: SearchHit, terms: frozenset[str]) -> None:
    """Keep the MAX_HIT_LINES-line window of a longer hit that holds most query words (the
    first such window; the head of the chunk when none matches)."""
    lines = hit.content.split("\n")
    if len(lines) <= MAX_HIT_LINES:
        return
    counts = [sum(1 for w in terms if w in line.lower()) for line in lines]
    window = sum(counts[:MAX_HIT_LINES])
    best, best_sum = 0, window
    for i in range(1, len(lines) - MAX_HIT_LINES + 1):
        window += counts[i + MAX_HIT_LINES - 1] - counts[i - 1]
        if window > best_sum:
            best, best_sum = i, window
    hit.content = "\n".join(lines[best : best + MAX_HIT_LINES])
    hit.start_line += best
    hit.end_line = hit.start_line + MAX_HIT_LINES - 1


def get_chunk(db_uri: str, chunk_id: str) -> dict | None:
    """One chunk with its parent and its children (the hierarchy kept in `parent_id`)."""
    table = open_index(db_uri).table(storage.CHUNKS)
    columns = _present(table)
    found = storage.read_rows(
        table, storage.id_list_filter("chunk_id", [chunk_id]), columns
    ).to_pylist()
    if not found:
        return None
    chunk = found[0]
    parent = None
    if chunk["parent_id"]:
        rows = storage.read_rows(
            table, storage.id_list_filter("chunk_id", [chunk["parent_id"]]), columns
        ).to_pylist()
        parent = rows[0] if rows else None
    children = storage.read_rows(
        table, storage.id_list_filter("parent_id", [chunk_id]), columns
    ).to_pylist()
    children.sort(key=lambda r: (r["start_line"], r["end_line"]))
    brief = ["chunk_id", "path", "start_line", "end_line", "kind", "name"]
    unit_parts = []
    if (chunk.get("parts") or 1) > 1:  # the other parts of a long unit: the rest of it
        where = " AND ".join(
            f"{column} = {storage.sql_string(chunk[column])}"
            for column in ("repo", "path", "parent_id", "name")
        )
        rows = storage.read_rows(table, where, columns).to_pylist()
        unit_parts = sorted(
            ({c: r[c] for c in brief + ["part"]} for r in rows if r["parts"] == chunk["parts"]),
            key=lambda r: r["part"],
        )
    return {
        **chunk,
        "parent": parent,
        "children": [{c: child[c] for c in brief} for child in children],
        "unit_parts": unit_parts,
    }
