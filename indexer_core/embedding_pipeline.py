"""A long-lived embedding worker that writes one partition while it encodes the next.

`embed_partition` reads, encodes and writes one partition after another; on a GPU the
reads and writes (LanceDB scans and commits, building Arrow tables) leave the device idle
for a good part of each partition. Here each partition's write runs on a background thread
while the caller goes on with the next partition's reads and encoding, so the device waits
for I/O only once. The worker also keeps the set of cache keys it has seen, so a partition
whose texts are all new never scans the cache.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

from indexer_core import storage
from indexer_core.indexing import (
    EmbeddingWork,
    EmbedReport,
    commit_embedding,
    encode_missing,
    plan_embedding,
)
from indexer_core.locking import partition_lock

KNOWN_KEYS_LIMIT = 2_000_000  # cache rows; ~100 bytes each in memory


class EmbeddingWorker:
    """Embeds partitions on one model; `submit` returns once the model is done with a
    partition, and the returned future once its vectors are written."""

    def __init__(self, db_uri: str, embedder) -> None:
        self.db_uri = db_uri
        self.embedder = embedder
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="embedding-writer")
        self._known_keys: set[str] | None = None
        self._too_large = False
        self._last: Future[EmbedReport] | None = None

    def submit(self, repo: str, shard: int) -> Future[EmbedReport]:
        """Read and encode one partition under its lock; the lock is held until the
        partition's write, queued behind the previous one, has committed."""
        if self._last is not None and not self._last.done():
            self._last.exception()  # at most one write in flight: memory stays one partition's
        hold = ExitStack()
        hold.enter_context(partition_lock(self.db_uri, repo, shard))
        try:
            work = plan_embedding(self.db_uri, repo, shard, self.embedder, self._cache_keys())
            encode_missing(work, self.embedder)
        except BaseException:
            hold.close()
            raise
        self._last = self._writer.submit(self._write, work, hold)
        return self._last

    def close(self) -> None:
        """Wait for the last write."""
        self._writer.shutdown(wait=True)

    def _write(self, work: EmbeddingWork, hold: ExitStack) -> EmbedReport:
        try:
            report = commit_embedding(work)
        finally:
            hold.close()
        if self._known_keys is not None:
            self._known_keys.update(work.keys[h] for h in work.fresh)
        return report

    def _cache_keys(self) -> set[str] | None:
        """The cache's keys, read once (keys name their model); the worker adds what it
        writes. None for a cache too large to hold in memory: then each partition looks up."""
        if self._known_keys is None and not self._too_large:
            table = storage.open_cache(storage.connect(self.db_uri), self.embedder.dim)
            if table.count_rows() > KNOWN_KEYS_LIMIT:
                self._too_large = True
                return None
            rows = storage.read_rows(table, None, ["cache_key"])
            self._known_keys = set(rows.column("cache_key").to_pylist())
        return self._known_keys
