"""Chunk metadata kept in memory per `chunks` table version, so a query reads only content.

Search needs every chunk's name, scope and location for the name rankings and for grouping
the parts of long functions, so it holds those columns anyway. Keeping each row's row id
with them lets the final hits be fetched by a point read (`take_row_ids`) of one column,
`content`, instead of a `chunk_id IN (...)` scan over every result column: on 100k rows
that read went from ~20 ms to ~3 ms (bench/search_latency.py).

Row ids belong to one table version. A write may land between loading the catalog and
reading content; a row deleted or rewritten since is then missing from the point read (lance
skips deleted rows and never reuses an id), and is read again by chunk id, so a hit never
shows another chunk's text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from indexer_core import storage
from indexer_core.names import NameIndex, NameWords
from indexer_core.ranking import PartGroups
from indexer_core.row_ids import ROW_ID, RowIdMap

CATALOG_COLUMNS = [
    "chunk_id", "repo", "path", "language", "kind", "name", "scope", "start_line", "end_line", "parent_id",
]
# What a search hit shows besides its content: all of it held by the catalog.
HIT_META_COLUMNS = ["chunk_id", "repo", "path", "start_line", "end_line", "kind", "name", "language", "parent_id"]


@dataclass
class ChunkCatalog:
    """One version of the `chunks` table's metadata, with each chunk's row id."""

    version: int
    names: NameIndex
    groups: PartGroups
    words: NameWords
    row_of: dict[str, int]  # chunk id -> position in names.rows
    row_ids: list[int]
    by_row: RowIdMap  # maps full-text hits (row ids) to chunk ids

    @classmethod
    def load(cls, table, version: int) -> ChunkCatalog:
        """Read the metadata columns (no content) of every chunk, with row ids."""
        arrow = table.search().select(CATALOG_COLUMNS).with_row_id(True).limit(None).to_arrow()
        row_ids = arrow.column(ROW_ID).to_pylist()
        rows = arrow.drop_columns([ROW_ID]).to_pylist()
        chunk_ids = [row["chunk_id"] for row in rows]  # the rows' own strings, not copies
        names = NameIndex.build(rows)
        return cls(
            version=version,
            names=names,
            groups=PartGroups.build(rows),
            words=NameWords.build(names),
            row_of=dict(zip(chunk_ids, range(len(chunk_ids)))),
            row_ids=row_ids,
            by_row=RowIdMap(version, dict(zip(row_ids, chunk_ids))),
        )

    def meta(self, chunk_id: str) -> dict | None:
        """A chunk's hit fields other than content, or None when this version lacks it."""
        i = self.row_of.get(chunk_id)
        if i is None:
            return None
        row = self.names.rows[i]
        return {column: row[column] for column in HIT_META_COLUMNS}

    def contents(self, table, chunk_ids: Iterable[str]) -> dict[str, str]:
        """Content of the given chunks that still exist; point reads by row id first."""
        wanted = list(dict.fromkeys(chunk_ids))
        known = [cid for cid in wanted if cid in self.row_of]
        found: dict[str, str] = {}
        if known:
            ids = [self.row_ids[self.row_of[cid]] for cid in known]
            try:
                rows = table.take_row_ids(ids).select(["chunk_id", "content"]).to_arrow()
            except (OSError, RuntimeError, ValueError):  # e.g. a fragment compacted away
                rows = None
            if rows is not None:
                asked = set(known)
                for cid, content in zip(rows.column("chunk_id").to_pylist(), rows.column("content").to_pylist()):
                    if cid in asked:
                        found[cid] = content
        missing = [cid for cid in wanted if cid not in found]
        if missing:
            rows = storage.read_rows(table, storage.id_list_filter("chunk_id", missing), ["chunk_id", "content"])
            found.update(zip(rows.column("chunk_id").to_pylist(), rows.column("content").to_pylist()))
        return found
