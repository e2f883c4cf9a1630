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

When the table moves on, `refreshed` follows it without building everything again (a full
load of 100k chunks takes seconds, nearly all of it turning Arrow into Python and parsing
names). It reads the metadata columns of the new version as Arrow (~0.15 s) and compares
row ids: a row id is one immutable row, never reused, so rows whose id the catalog holds are
unchanged, held ids that are gone were deleted or rewritten, and only the rows with new ids
are turned into Python. A new row whose chunk id the catalog held, with the same metadata,
was moved (a rewrite by `merge_insert`, a compaction): it keeps its place and takes its new
row id. Other new rows are added, gone ones dropped, and the name indexes, word weights and
part groups updated from that difference; they rank exactly like a fresh load
(tests/core/test_chunk_catalog.py). The catalog a query holds is never changed: an update
makes a new one, sharing what did not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indexer_core.search.name_words import NameWords
from indexer_core.search.names import NameIndex
from indexer_core.search.ranking import PartGroups
from indexer_core.search.row_ids import ROW_ID, RowIdMap, member
from indexer_core.storage import tables as storage

CATALOG_COLUMNS = [
    "chunk_id",
    "repo",
    "path",
    "language",
    "kind",
    "name",
    "scope",
    "start_line",
    "end_line",
    "parent_id",
    "part",
    "parts",
]
# What a search hit shows besides its content: all of it held by the catalog.
# Slots emptied by dropped rows stay until they outnumber the live rows by this many; then a
# full load packs them.
EMPTY_SLOTS_KEPT = 1000
HIT_META_COLUMNS = [
    "chunk_id",
    "repo",
    "path",
    "start_line",
    "end_line",
    "kind",
    "name",
    "language",
    "parent_id",
    "scope",
    "part",
    "parts",
]


def _read(table) -> pa.Table:
    """The metadata columns (no content) of every chunk, with row ids, in one scan.

    A table written before `part`/`parts` existed (until its next index run adds them)
    reads as if every chunk were a whole unit."""
    present = [c for c in CATALOG_COLUMNS if c in table.schema.names]
    rows = table.search().select(present).with_row_id(True).limit(None).to_arrow()
    for column in CATALOG_COLUMNS:
        if column not in present:
            rows = rows.append_column(column, pa.array([1] * rows.num_rows, pa.int32()))
    return rows


def _same_rows(a: pa.Table, b: pa.Table) -> np.ndarray:
    """Per row, whether two tables of CATALOG_COLUMNS hold the same values (nulls equal)."""
    same = np.ones(a.num_rows, dtype=bool)
    for column in CATALOG_COLUMNS:
        x, y = a.column(column), b.column(column)
        equal = pc.fill_null(pc.equal(x, y), False)
        both_null = pc.and_(pc.is_null(x), pc.is_null(y))
        same &= pc.or_(equal, both_null).to_numpy(zero_copy_only=False)
    return same


@dataclass
class ChunkCatalog:
    """One version of the `chunks` table's metadata, with each chunk's row id.

    Rows live in slots (positions in `names.rows`); an update empties the slots of dropped
    rows and appends new ones, and a full load packs them again once most slots are empty.
    """

    version: int
    names: NameIndex
    groups: PartGroups
    words: NameWords
    row_of: dict[str, int]  # chunk id -> slot
    row_ids: np.ndarray  # per slot: its row's id (uint64); a dropped slot keeps its last one
    alive: np.ndarray  # per slot: holds a row
    by_row: RowIdMap  # maps full-text hits (row ids) to chunk ids
    arrow: pa.Table  # CATALOG_COLUMNS per slot, to compare moved rows without Python objects
    exact: bool = True  # False: the table held a chunk id twice, so updates load afresh

    @classmethod
    def empty(cls) -> ChunkCatalog:
        names = NameIndex(rows=[])
        return cls(
            -1,
            names,
            PartGroups(),
            NameWords.build(names),
            {},
            np.zeros(0, dtype=np.uint64),
            np.zeros(0, dtype=bool),
            RowIdMap(-1, {}),
            None,
        )

    @classmethod
    def load(cls, table, version: int) -> ChunkCatalog:
        """Read the metadata columns (no content) of every chunk, with row ids."""
        return cls._from_arrow(_read(table), version)

    @classmethod
    def _from_arrow(cls, arrow: pa.Table, version: int) -> ChunkCatalog:
        columns = arrow.drop_columns([ROW_ID])
        rows = columns.to_pylist()
        catalog = cls.empty()._changed(version, (), rows, columns, arrow.column(ROW_ID).to_numpy())
        catalog.exact = len(catalog.row_of) == len(rows)
        return catalog

    def refreshed(self, table, version: int) -> ChunkCatalog:
        """The catalog of `version` (a later version of the same table), made from this one
        by the rows that differ; this catalog is left as it was."""
        if version < self.version or not self.exact:
            return self.load(table, version)
        arrow = _read(table)
        ids = arrow.column(ROW_ID).to_numpy()
        alive = np.flatnonzero(self.alive)
        held = self.row_ids[alive]
        is_new = ~member(ids, held)
        dropped = set(alive[~member(held, ids)].tolist())  # slots whose row is gone
        if not is_new.any() and not dropped:
            return replace(self, version=version)
        new = arrow.filter(pa.array(is_new))
        new_ids = new.column(ROW_ID).to_numpy()
        new = new.drop_columns([ROW_ID])
        cids = new.column("chunk_id").to_pylist()
        slots = [self.row_of.get(cid, -1) for cid in cids]
        again = np.flatnonzero(np.array(slots, dtype=np.int64) >= 0)  # chunk ids held before
        old_slots = np.array(slots, dtype=np.int64)[again]
        if len(set(cids)) < len(cids) or not dropped.issuperset(old_slots.tolist()):
            return self._from_arrow(arrow, version)  # a chunk id twice in the table
        try:
            same = _same_rows(self.arrow.take(old_slots), new.take(again))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # columns of another type
            return self._from_arrow(arrow, version)
        moved = (old_slots[same], new_ids[again[same]])
        dropped.difference_update(moved[0].tolist())
        fresh = np.setdiff1d(np.arange(len(cids)), again[same])
        live = self.names.live - len(dropped) + len(fresh)
        if len(self.names.rows) + len(fresh) > 2 * live + EMPTY_SLOTS_KEPT:  # mostly empty: pack
            return self._from_arrow(arrow, version)
        added = new.take(fresh)
        return self._changed(version, dropped, added.to_pylist(), added, new_ids[fresh], moved)

    def _changed(
        self,
        version: int,
        dropped: Iterable[int],
        added: list[dict],
        added_arrow: pa.Table,
        added_ids: np.ndarray,
        moved: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> ChunkCatalog:
        """A new catalog: rows at slots `dropped` gone, `added` rows (also as `added_arrow`,
        with row ids `added_ids`) appended, and the rows at slots `moved[0]` at the new row
        ids `moved[1]`."""
        names, change = self.names.updated(dropped, added)
        words = self.words.updated(names, change)
        groups = self.groups.updated(change.dropped.values(), added)
        row_of = dict(self.row_of)
        chunk_of = dict(self.by_row.chunk_of)
        for slot, row in change.dropped.items():
            del row_of[row["chunk_id"]]
            chunk_of.pop(int(self.row_ids[slot]), None)
        row_ids = np.concatenate([self.row_ids, added_ids.astype(np.uint64)])
        alive = np.concatenate([self.alive, np.ones(len(added), dtype=bool)])
        alive[list(change.dropped)] = False
        added_cids = [row["chunk_id"] for row in added]  # the rows' own strings, not copies
        row_of.update(zip(added_cids, change.added))
        chunk_of.update(zip(added_ids.tolist(), added_cids))
        if moved is not None and len(moved[0]):
            slots, now = moved
            if len(slots) * 4 > len(chunk_of):  # a compaction: cheaper to map every row again
                row_ids[slots] = now
                live = np.flatnonzero(alive)
                chunk_of = dict(
                    zip(row_ids[live].tolist(), [names.rows[i]["chunk_id"] for i in live.tolist()])
                )
            else:
                for slot, row_id in zip(slots.tolist(), now.tolist()):
                    del chunk_of[int(row_ids[slot])]
                    chunk_of[row_id] = names.rows[slot]["chunk_id"]
                row_ids[slots] = now
        arrow = added_arrow if self.arrow is None else pa.concat_tables([self.arrow, added_arrow])
        if arrow.column(0).num_chunks > 64:
            arrow = arrow.combine_chunks()
        return ChunkCatalog(
            version,
            names,
            groups,
            words,
            row_of,
            row_ids,
            alive,
            RowIdMap(version, chunk_of),
            arrow,
        )

    def row(self, chunk_id: str) -> dict | None:
        """A chunk's catalogue row (CATALOG_COLUMNS), shared: do not change it."""
        i = self.row_of.get(chunk_id)
        return None if i is None else self.names.rows[i]

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
            ids = [int(self.row_ids[self.row_of[cid]]) for cid in known]
            try:
                rows = table.take_row_ids(ids).select(["chunk_id", "content"]).to_arrow()
            except (OSError, RuntimeError, ValueError):  # e.g. a fragment compacted away
                rows = None
            if rows is not None:
                asked = set(known)
                for cid, content in zip(
                    rows.column("chunk_id").to_pylist(), rows.column("content").to_pylist()
                ):
                    if cid in asked:
                        found[cid] = content
        missing = [cid for cid in wanted if cid not in found]
        if missing:
            rows = storage.read_rows(
                table, storage.id_list_filter("chunk_id", missing), ["chunk_id", "content"]
            )
            found.update(
                zip(rows.column("chunk_id").to_pylist(), rows.column("content").to_pylist())
            )
        return found
