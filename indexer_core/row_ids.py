"""Chunk ids by LanceDB row id, held per table version, so a ranking returns row ids only.

A vector or full-text search that also returns a column pays a second read of its hits
(a `take` of that column): on 100k rows that doubled an ANN search (~9 -> ~5 ms) and a
BM25 search (~8 -> ~4 ms, bench/search_latency.py). Asking for `_rowid` alone and
mapping it here avoids that read.

Row ids are row addresses that lance never reuses, so a mapped id always names the chunk
that row held. A search may run on a newer version than the map (the table refreshed in
between); ids the map lacks are then read from the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ROW_ID = "_rowid"


@dataclass
class RowIdMap:
    """`chunk_id` by row id for one version of a table."""

    version: int
    chunk_of: dict[int, str]

    @classmethod
    def load(cls, table, version: int) -> RowIdMap:
        arrow = table.search().select(["chunk_id"]).with_row_id(True).limit(None).to_arrow()
        return cls(version, dict(zip(arrow.column(ROW_ID).to_pylist(), arrow.column("chunk_id").to_pylist())))

    def chunk_ids(self, table, row_ids: Sequence[int]) -> list[str | None]:
        """The chunk id of each row id, in order; None for a row gone from the table."""
        missing = [r for r in row_ids if r not in self.chunk_of]
        extra: dict[int, str] = {}
        if missing:
            arrow = table.take_row_ids(missing).select(["chunk_id"]).with_row_id().to_arrow()
            extra = dict(zip(arrow.column(ROW_ID).to_pylist(), arrow.column("chunk_id").to_pylist()))
        return [self.chunk_of.get(r) or extra.get(r) for r in row_ids]
