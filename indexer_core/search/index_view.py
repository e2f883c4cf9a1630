"""One database as a long-lived process sees it: tables, models, the chunk catalogue and
row-id maps, each kept per table version, so a query reads only what moved."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pyarrow.compute as pc

from indexer_core.search import indexes as search_index
from indexer_core.search.catalog import ChunkCatalog
from indexer_core.search.row_ids import RowIdMap
from indexer_core.storage import tables as storage

_CONSISTENCY = timedelta(seconds=2)  # how stale a long-lived server's view may get


class OpenIndex:
    """One database as a process sees it: tables, models and names cached per table version."""

    def __init__(self, db_uri: str) -> None:
        self.db_uri = db_uri
        self.db = storage.connect(db_uri, read_consistency_interval=_CONSISTENCY)
        self._tables: dict[str, object] = {}
        self._catalog: ChunkCatalog | None = None
        self._vector_state: tuple[RowIdMap, set[str]] | None = None
        self._fts_checked_version: int | None = None
        self._lock = threading.Lock()
        self.checked_embedders: dict[tuple, object] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="code-index-text")

    def table(self, name: str):
        if name not in self._tables:
            if name not in storage.table_names(self.db):
                raise storage.StorageError(
                    f"no index in {self.db_uri}: run `code-index index PATH` first"
                )
            self._tables[name] = self.db.open_table(name)
        return self._tables[name]

    def models(self, version: int | None = None) -> set[str]:
        """The models of the vectors table's rows (at `version`, when the caller read it)."""
        if version is None:
            version = self.table(storage.VECTORS).version
        return self._vectors(version)[1]

    def catalog(self) -> ChunkCatalog:
        """The chunk metadata of the current `chunks` version (one version read per call)."""
        table = self.table(storage.CHUNKS)
        version = table.version
        with self._lock:
            if self._catalog is None:
                self._catalog = ChunkCatalog.load(table, version)
            elif self._catalog.version != version:  # the rows that changed, not a full load
                self._catalog = self._catalog.refreshed(table, version)
            return self._catalog

    def vector_rows(self, version: int) -> RowIdMap:
        """Chunk ids by row id of the vectors table at `version` (read once per version)."""
        return self._vectors(version)[0]

    def _vectors(self, version: int) -> tuple[RowIdMap, set[str]]:
        """The row-id map and the models of the vectors table, from one scan per version;
        the map follows the table by the row ids that came and went (`RowIdMap.refreshed`)."""
        with self._lock:
            if self._vector_state is None or self._vector_state[0].version != version:
                table = self.table(storage.VECTORS)
                arrow = (
                    table.search()
                    .select(["chunk_id", "model"])
                    .with_row_id(True)
                    .limit(None)
                    .to_arrow()
                )
                if self._vector_state is None:
                    rows = RowIdMap.from_arrow(arrow, version)
                else:
                    rows = self._vector_state[0].refreshed_from(arrow, version)
                self._vector_state = (rows, set(pc.unique(arrow.column("model")).to_pylist()))
            return self._vector_state

    def ensure_fts(self, version: int) -> None:
        """Full-text indexes come from the index assets; a bare CLI index gets them once here.

        `version` is the `chunks` version the query already read, so the check costs nothing
        until the table changes.
        """
        if self._fts_checked_version == version:
            return
        table = self.table(storage.CHUNKS)
        if not search_index.fts_ready(table):
            search_index.build_fts_indexes(self.db_uri)
            # This handle would see the new indexes only after its consistency interval: the
            # query that built them would search the text unindexed, scored differently.
            table.checkout_latest()
        self._fts_checked_version = version


_OPEN: dict[str, OpenIndex] = {}


def open_index(db_uri: str) -> OpenIndex:
    """The process-wide view of a database (opened once, refreshed by table version)."""
    if db_uri not in _OPEN:
        _OPEN[db_uri] = OpenIndex(db_uri)
    return _OPEN[db_uri]
