"""Search results: loading the hits of a ranking (collapsing the parts of a long unit into
one result) and reading one chunk with its parent and children."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.filters import SearchFilters
from indexer_core.search.index_view import OpenIndex, open_index
from indexer_core.storage import tables as storage

_HIT_COLUMNS = [
    "chunk_id",
    "repo",
    "path",
    "start_line",
    "end_line",
    "kind",
    "name",
    "language",
    "content",
    "parent_id",
]


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
    parts: int = 1  # >1: the chunks of one long function, reported as one result

    def snippet(self, lines: int = 3) -> str:
        body = [line for line in self.content.split("\n") if line.strip()]
        return "\n".join(body[:lines])

    def location(self) -> str:
        return f"{self.path}:{self.start_line}-{self.end_line}"

    def to_dict(self) -> dict:
        return {**asdict(self), "location": self.location(), "snippet": self.snippet()}


def load_hits(
    index: OpenIndex,
    catalog: ChunkCatalog,
    picked: list[tuple[str, int | None]],
    scores: dict[str, float],
    filters: SearchFilters,
    k: int,
) -> list[SearchHit]:
    """The first k picks that pass the path glob, as hits; a part of a long function stands
    for the whole function.

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
                table, storage.id_list_filter("chunk_id", unknown), _HIT_COLUMNS
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
            for m in (catalog.groups.members[group] if group is not None else [cid])
        ]
        contents = catalog.contents(table, [m for m in members if m in catalog.row_of])
        contents.update(
            {cid: row["content"] for cid, row in meta.items() if row and "content" in row}
        )
        for cid, group in chosen:
            if cid not in contents:
                continue  # deleted since the catalog was loaded
            hit = SearchHit(score=scores[cid], **{**meta[cid], "content": contents[cid]})
            if group is not None:
                parts = [m for m in catalog.groups.members[group] if m in contents]
                hit.start_line, hit.end_line = catalog.groups.spans[group]
                hit.content = "\n".join(contents[m] for m in parts)
                hit.parts = len(parts)
            hits.append(hit)
    return hits


def get_chunk(db_uri: str, chunk_id: str) -> dict | None:
    """One chunk with its parent and its children (the hierarchy kept in `parent_id`)."""
    table = open_index(db_uri).table(storage.CHUNKS)
    columns = _HIT_COLUMNS + ["scope"]
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
    return {
        **chunk,
        "parent": parent,
        "children": [{c: child[c] for c in brief} for child in children],
    }
