"""Per-version caches of a long-lived search process: a moved table never stalls a query on a
full rebuild, and a query served by the previous version's catalogue still finds new chunks."""

from __future__ import annotations

import threading
import time

from indexer_core import search as search_module
from indexer_core.chunk_catalog import ChunkCatalog
from indexer_core.versioned_cache import VersionedCache
from tests.core.search_corpus import build_index


def _settle(cache: VersionedCache, version: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while cache.version != version and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.version == version


def test_first_value_is_built_in_place_then_rebuilt_in_the_background() -> None:
    cache: VersionedCache[str] = VersionedCache("test", wait=0.05)
    builds: list[int] = []
    assert cache.get(1, lambda: builds.append(1) or "one") == "one"
    assert cache.get(1, lambda: builds.append(99) or "never") == "one"

    release = threading.Event()

    def slow_two() -> str:
        builds.append(2)
        release.wait(30)
        return "two"

    assert cache.get(2, slow_two) == "one"  # not ready within the wait: the previous value
    assert cache.get(2, slow_two) == "one"  # one rebuild at a time, not one per query
    release.set()
    _settle(cache, 2)
    assert cache.get(2, slow_two) == "two" and builds == [1, 2]

    def broken() -> str:
        raise OSError("fragment gone")

    assert cache.get(3, broken) == "two"  # a failed rebuild leaves the value in service
    _settle(cache, 2)
    assert cache.get(3, lambda: "three") in {"two", "three"}
    _settle(cache, 3)  # and the next call tries again
    assert cache.get(3, lambda: "never") == "three"


def test_search_with_the_catalogue_still_rebuilding_finds_a_chunk_written_since(tmp_path, monkeypatch) -> None:
    from indexer_core.embedding import load_embedder
    from indexer_core.indexing import IndexSettings, chunk_partition, embed_partition

    db_uri = build_index(tmp_path)
    index = search_module.open_index(db_uri)
    assert search_module.search(db_uri, "compute_checksum", k=3)  # the catalogue is loaded
    old_version = index.catalog().version

    root = tmp_path / "repo"
    (root / "pkg" / "ledger.py").write_text(
        "def reconcile_ledger_entries(entries):\n    return sorted(set(entries))\n"
    )
    settings = IndexSettings(shards=1, use_git=False)
    chunk_partition(db_uri, "demo", str(root), 0, settings)
    embed_partition(db_uri, "demo", 0, load_embedder(settings.model))

    release = threading.Event()
    real_load = ChunkCatalog.load

    def blocked_load(table, version):
        release.wait(60)
        return real_load(table, version)

    monkeypatch.setattr(ChunkCatalog, "load", staticmethod(blocked_load))
    monkeypatch.setattr(index._catalog, "wait", 0.05)
    for name in (search_module.storage.CHUNKS, search_module.storage.VECTORS):
        index.table(name).checkout_latest()  # not wait for the 2 s consistency interval
    try:
        for mode in ("hybrid", "text", "vector"):
            hits = search_module.search(db_uri, "reconcile ledger entries", k=3, mode=mode)
            assert hits and hits[0].name == "reconcile_ledger_entries", mode
            assert hits[0].path == "pkg/ledger.py" and "sorted(set(entries))" in hits[0].content
        assert index.catalog().version == old_version  # served while the new one was blocked
    finally:
        release.set()
    _settle(index._catalog, index.table(search_module.storage.CHUNKS).version)
