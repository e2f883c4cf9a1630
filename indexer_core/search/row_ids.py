"""Chunk ids by LanceDB row id, held per table version, so a ranking returns row ids only.

A vector or full-text search that also returns a column pays a second read of its hits
(a `take` of that column): on 100k rows that doubled an ANN search (~9 -> ~5 ms) and a
BM25 search (~8 -> ~4 ms, bench/search_latency.py). Asking for `_rowid` alone and
mapping it here avoids that read.

Row ids are row addresses that lance never reuses, so a mapped id always names the chunk
that row held. A search may run on a newer version than the map (the table refreshed in
between); ids the map lacks are then read from the table. For the same reason a map follows
its table by the row ids that came and went (`refreshed`), not by converting every row again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

ROW_ID = "_rowid"


def _read(table) -> pa.Table:
    return table.search().select(["chunk_id"]).with_row_id(True).limit(None).to_arrow()


def member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """Which `values` are in `of`: row ids, unique and mostly ascending, so sorting is cheap
    (several times faster than `np.isin` on 100k ids)."""
    if not len(of):
        return np.zeros(len(values), dtype=bool)
    ordered = np.sort(of)
    at = np.searchsorted(ordered, values)
    at[at == len(ordered)] = 0
    return ordered[at] == values


@dataclass
class RowIdMap:
    """`chunk_id` by row id for one version of a table."""

    version: int
    chunk_of: dict[int, str]
    ids: np.ndarray | None = None  # the row ids of chunk_of, when loaded from the table

    @classmethod
    def load(cls, table, version: int) -> RowIdMap:
        return cls.from_arrow(_read(table), version)

    @classmethod
    def from_arrow(cls, arrow: pa.Table, version: int) -> RowIdMap:
        """The map of a scan that has `chunk_id` and row ids (other columns are ignored)."""
        ids = arrow.column(ROW_ID).to_numpy()
        return cls(version, dict(zip(ids.tolist(), arrow.column("chunk_id").to_pylist())), ids)

    def refreshed(self, table, version: int) -> RowIdMap:
        """The map of a later version, turning only new row ids into Python (a row id is one
        immutable row, so held ids still in the table map to the same chunk)."""
        return self.refreshed_from(_read(table), version)

    def refreshed_from(self, arrow: pa.Table, version: int) -> RowIdMap:
        """`refreshed`, from a scan of the later version with `chunk_id` and row ids."""
        if self.ids is None:
            return self.from_arrow(arrow, version)
        ids = arrow.column(ROW_ID).to_numpy()
        new = ~member(ids, self.ids)
        gone = self.ids[~member(self.ids, ids)]
        if int(new.sum()) + len(gone) > len(ids) // 2:
            return self.from_arrow(arrow, version)
        chunk_of = dict(self.chunk_of)
        for row_id in gone.tolist():
            del chunk_of[row_id]
        chunk_of.update(
            zip(ids[new].tolist(), arrow.column("chunk_id").filter(pa.array(new)).to_pylist())
        )
        return RowIdMap(version, chunk_of, ids)

    def chunk_ids(self, table, row_ids: Sequence[int]) -> list[str | None]:
        """The chunk id of each row id, in order; None for a row gone from the table."""
        missing = [r for r in row_ids if r not in self.chunk_of]
        extra: dict[int, str] = {}
        if missing:
            arrow = table.take_row_ids(missing).select(["chunk_id"]).with_row_id().to_arrow()
            extra = dict(
                zip(arrow.column(ROW_ID).to_pylist(), arrow.column("chunk_id").to_pylist())
            )
        return [self.chunk_of.get(r) or extra.get(r) for r in row_ids]
