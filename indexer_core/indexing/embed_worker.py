"""A long-lived embedding worker that writes one partition while it encodes the next.

`embed_partition` reads, encodes and writes one partition after another; on a GPU the
reads and writes (LanceDB scans and commits, building Arrow tables) leave the device idle
for a good part of each partition. Here each partition's write runs on a background thread
while the caller goes on with the next partition's reads and encoding, so the device waits
for I/O only once. The worker also keeps the set of cache keys it has seen, so a partition
whose texts are all new never scans the cache, and the vectors of the write still in
flight, so a text shared with the previous partition is neither looked up nor encoded.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

import numpy as np

from indexer_core.indexing.embed_step import (
    EmbeddingWork,
    EmbedReport,
    commit_embedding,
    encode_missing,
    plan_embedding,
)
from indexer_core.storage import tables as storage
from indexer_core.storage.locking import partition_lock

KNOWN_KEYS_LIMIT = 2_000_000  # cache rows; ~100 bytes each in memory


class EmbeddingWorker:
    """Embeds partitions on one model, in the order they are submitted.

    `submit` returns at once with a future that completes when the partition's vectors are
    written: one thread reads and encodes, another writes, so the caller stays free to
    record each partition the moment it lands.
    """

    def __init__(self, db_uri: str, embedder) -> None:
        self.db_uri = db_uri
        self.embedder = embedder
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="embedding-encoder")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="embedding-writer")
        self._known_keys: set[str] | None = None
        self._too_large = False
        self._last: Future[EmbedReport] | None = None
        # The vectors of the write that may still be in flight, by cache key: the next
        # partition takes a text it shares with that one from here, not from the model.
        self._in_flight: dict[str, np.ndarray] = {}
        self._queued: list[Future[EmbedReport]] = []  # submitted, not yet started

    def submit(self, repo: str, shard: int, locked: bool = False) -> Future[EmbedReport]:
        """Queue a partition; the future holds its report once its vectors are committed.
        `locked`: the caller holds the partition's lock (a consumer's claim) until then."""
        done: Future[EmbedReport] = Future()
        self._queued.append(done)
        self._encoder.submit(self._encode, repo, shard, done, locked)
        return done

    def close(self, cancel: bool = False) -> None:
        """Wait for the queued partitions and the last write (or, with `cancel`, drop the
        partitions not yet started)."""
        self._encoder.shutdown(wait=True, cancel_futures=cancel)
        self._writer.shutdown(wait=True)
        for done in self._queued:
            done.cancel()  # never started: cancelled, so no caller waits on it forever
        self._queued.clear()

    def _encode(self, repo: str, shard: int, done: Future[EmbedReport], locked: bool) -> None:
        """Read and encode one partition under its lock while the previous partition's write
        goes on; then queue this one's write. The lock is held until that write commits."""
        self._queued.remove(done)
        if not done.set_running_or_notify_cancel():
            return
        hold = ExitStack()
        try:
            if not locked:
                hold.enter_context(partition_lock(self.db_uri, repo, shard))
            work = plan_embedding(
                self.db_uri, repo, shard, self.embedder, self._cache_keys(), self._in_flight
            )
            encode_missing(work, self.embedder)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            hold.close()
            done.set_exception(exc)
            return
        if self._last is not None:
            self._last.exception()  # at most one write in flight: memory stays one partition's
        fresh = {work.keys[h]: vector for h, vector in work.fresh.items()}
        if self._known_keys is not None:
            self._known_keys.update(fresh)
        self._in_flight = fresh
        self._last = self._writer.submit(self._write, work, hold)
        self._last.add_done_callback(lambda written: _settle(done, written))

    def _write(self, work: EmbeddingWork, hold: ExitStack) -> EmbedReport:
        try:
            return commit_embedding(work)
        finally:
            hold.close()

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


def _settle(done: Future[EmbedReport], written: Future[EmbedReport]) -> None:
    exc = written.exception()
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(written.result())
