"""A long-lived embedding worker: reads the next partition and writes the previous one while
it encodes the current one.

`embed_partition` reads, encodes and writes one partition after another; on a GPU the
reads and writes (LanceDB scans, cache look-ups, commits, building Arrow tables) leave the
device idle for a good part of each partition. Here a reader thread prepares the next
partition and a writer thread commits the previous one while the encoder runs the model,
so the device waits for I/O only at the ends. Where the encoder queues work
(`encode_async`: the ONNX encoder's batch streams on the CPU), a partition's texts are
queued before the previous partition's last batches finish, so no stream idles at the seam;
a finisher thread takes each partition's vectors in order and hands them to the writer.
The worker also keeps the set of cache keys it has seen, so a partition whose texts are all
new never scans the cache, and the vectors of the last partitions encoded (or still being
encoded), so a text shared with them is neither looked up nor encoded again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack

import numpy as np

from indexer_core.indexing.embed_step import (
    EmbeddingWork,
    EmbedReport,
    Part,
    check_vectors,
    commit_embedding,
    encode_missing_async,
    plan_embedding,
    reuse_vectors,
    shards_with_vectors,
)
from indexer_core.storage import tables as storage
from indexer_core.storage.locking import partition_lock

KNOWN_KEYS_LIMIT = 2_000_000  # cache rows; ~100 bytes each in memory
READ_AHEAD = 2  # partitions read before the encoder takes them: memory stays a few partitions
# Partitions whose texts are queued on the encoder at once. Where it pools queued calls' texts
# into batches by length (`shared_batches`), more pad less: the CPython tree's 10 partitions,
# cut into batches of 4 one partition at a time, ran 3.1% padded tokens over the texts' own;
# pooled 2, 3 or 4 at a time 2.2, 1.9 or 1.4% (one sorted list of all: 0.45%). The oldest
# partition still leads, so each finishes about as soon as before.
QUEUED_ON_ENCODER = 4


class EmbeddingWorker:
    """Embeds partitions on one model, in the order they are submitted.

    `submit` returns at once with a future that completes when the partition's vectors are
    written. Three threads form a pipeline, so the model waits for neither reads nor writes:
    one reads the next partition (its chunks, its vectors, cache look-ups) while another
    encodes the current one and a third writes the previous one. The caller stays free to
    record each partition the moment it lands.
    """

    def __init__(self, db_uri: str, embedder) -> None:
        self.db_uri = db_uri
        self.embedder = embedder
        # One connection for the worker's life: each partition's reads fetch only the
        # fragments written since the last one's (`storage.kept_connection`).
        self._db = storage.kept_connection(db_uri)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="embedding-reader")
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="embedding-encoder")
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix="embedding-finisher")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="embedding-writer")
        # partitions queued on the encoder, not yet written
        self._finishing = threading.Semaphore(QUEUED_ON_ENCODER)
        self._encoding: deque[Future] = deque()  # the last partitions' texts on the encoder
        self._encoded_until = 0.0  # when the encoder finished the partitions before
        # Texts queued on the encoder and not yet finished, by cache key: the future of the
        # partition that encodes each, so a later partition takes the vector instead.
        self._claims: dict[str, Future] = {}
        self._claims_lock = threading.Lock()
        self._known_keys: set[str] | None = None
        self._cache_table = None  # opened once: a lagging view of the cache only costs misses
        self._too_large = False
        self._last: Future[EmbedReport] | None = None
        # Fresh vectors by cache key of the last partitions encoded, whose writes may still
        # be in flight: a later partition takes a text it shares with them from here.
        self._recent: dict[str, np.ndarray] = {}
        self._previous: dict[str, np.ndarray] = {}
        self._ahead = threading.Semaphore(READ_AHEAD)  # partitions read, not yet encoded
        self._queued: list[Future[EmbedReport]] = []  # submitted, not yet started
        self._unclaimed: list[Future] = []  # reads whose partition lock nobody released yet

    def submit(
        self, repo: str, shard: int, locked: bool = False, part: Part | None = None
    ) -> Future[EmbedReport]:
        """Queue a partition (or its slice `part`); the future holds its report once its
        vectors are committed. `locked`: the caller holds the partition's lock (a consumer's
        claim) until then; a slice must be `locked`."""
        done: Future[EmbedReport] = Future()
        self._queued.append(done)
        read = self._reader.submit(self._read, repo, shard, locked, part)
        self._unclaimed.append(read)
        self._encoder.submit(self._encode, read, done)
        return done

    def settle_empty(self, repo: str, shards: list[int]) -> dict[int, EmbedReport]:
        """Reports for the partitions of `shards` that hold no vectors, where the caller
        knows their chunk steps left them no chunks: nothing to encode or write, told by one
        read for all of them. Partitions left out hold vectors to remove: `submit` them."""
        started = time.perf_counter()
        holding = shards_with_vectors(self._db, repo, shards)
        seconds = time.perf_counter() - started
        reports = {}
        for shard in sorted(set(shards) - holding):
            reports[shard] = EmbedReport(
                repo=repo,
                shard=shard,
                seconds=seconds,
                read_seconds=seconds,
                model=self.embedder.model_name,
                device=self.embedder.device,
            )
        return reports

    def close(self, cancel: bool = False) -> None:
        """Wait for the queued partitions and the last write (or, with `cancel`, drop the
        partitions not yet started, releasing what their reads hold)."""
        self._encoder.shutdown(wait=True, cancel_futures=cancel)
        for _ in range(len(self._unclaimed)):
            self._ahead.release()  # a read waiting for room gets it, and finds no taker
        self._reader.shutdown(wait=True, cancel_futures=cancel)
        self._finisher.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        for read in self._unclaimed:
            if read.done() and not read.cancelled() and read.exception() is None:
                read.result()[1].close()  # read, never encoded: its lock goes
        self._unclaimed.clear()
        for done in self._queued:
            done.cancel()  # never started: cancelled, so no caller waits on it forever
        self._queued.clear()

    def _read(
        self, repo: str, shard: int, locked: bool, part: Part | None = None
    ) -> tuple[EmbeddingWork, ExitStack]:
        """Take the partition's lock (unless the caller holds it) and read what it needs; the
        lock is held until its write commits. At most READ_AHEAD partitions are read ahead."""
        self._ahead.acquire()
        hold = ExitStack()
        try:
            if not locked:
                hold.enter_context(partition_lock(self.db_uri, repo, shard))
            work = plan_embedding(
                self.db_uri,
                repo,
                shard,
                self.embedder,
                self._cache_keys(),
                self._recent,
                part,
                self._db,
                self._cache(),
            )
        except BaseException:
            hold.close()
            raise
        return work, hold

    def _encode(self, read: Future, done: Future[EmbedReport]) -> None:
        """Queue one partition's texts on the encoder, then, with QUEUED_ON_ENCODER queued,
        wait for the oldest to be encoded: the encoder starts on these while the earlier
        ones' last batches finish (and, where it pools queued texts, fills their batches with
        these). The finisher takes it from there."""
        self._queued.remove(done)
        if not done.set_running_or_notify_cancel():
            return
        waiting = time.perf_counter()
        try:
            work, hold = read.result()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            self._unclaimed.remove(read)
            done.set_exception(exc)
            return
        finally:
            self._ahead.release()
        self._unclaimed.remove(read)
        self._finishing.acquire()  # the finisher is at most QUEUED_ON_ENCODER partitions behind
        work.report.encoder_wait_seconds = time.perf_counter() - waiting
        try:
            # One look at both: the finisher moves a partition's texts from the claims to
            # `_recent` under the same lock, so a shared text is always in one of them.
            with self._claims_lock:
                reuse_vectors(work, {**self._previous, **self._recent})  # read before they existed
                elsewhere = self._encoded_elsewhere(work)
            queued = time.perf_counter()
            encoding = encode_missing_async(work, self.embedder)
            if not (encoding.done() and encoding.exception() is not None):
                with self._claims_lock:  # failed at once: later partitions encode these themselves
                    self._claim(work, encoding)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            self._finishing.release()
            hold.close()
            done.set_exception(exc)
            return
        self._finisher.submit(self._finish, work, hold, done, encoding, elsewhere, queued)
        self._encoding.append(encoding)
        if len(self._encoding) >= QUEUED_ON_ENCODER:
            wait([self._encoding.popleft()])

    def _encoded_elsewhere(self, work: EmbeddingWork) -> dict[str, tuple[Future, str]]:
        """The partition's missing texts that a partition still being encoded also holds,
        taken out of its missing texts: by content hash, the future that will hold the
        vector, and the text. The caller holds `_claims_lock`."""
        elsewhere = {
            h: (self._claims[work.keys[h]], text)
            for h, text in work.missing_texts.items()
            if work.keys[h] in self._claims
        }
        for content_hash in elsewhere:
            del work.missing_texts[content_hash]
        return elsewhere

    def _claim(self, work: EmbeddingWork, encoding: Future) -> None:
        """Later partitions take this one's missing texts from `encoding` (lock held)."""
        for content_hash in work.missing_texts:
            self._claims.setdefault(work.keys[content_hash], encoding)

    def _release(self, work: EmbeddingWork, encoding: Future) -> None:
        """Drop this partition's claims (lock held)."""
        for content_hash in work.missing_texts:
            if self._claims.get(work.keys[content_hash]) is encoding:
                del self._claims[work.keys[content_hash]]

    def _finish(
        self,
        work: EmbeddingWork,
        hold: ExitStack,
        done: Future[EmbedReport],
        encoding: Future,
        elsewhere: dict[str, tuple[Future, str]],
        queued: float,
    ) -> None:
        """Partitions in the order they were queued: take the encoded vectors (and those of
        texts another partition encoded), then queue the write, one in flight at most."""
        try:
            self._finish_encoding(work, encoding, elsewhere, queued)
            if self._last is not None:
                self._last.exception()  # at most one write in flight: memory stays bounded
            fresh = {work.keys[h]: vector for h, vector in work.fresh.items()}
            if self._known_keys is not None:
                self._known_keys.update(fresh)
            with self._claims_lock:  # later partitions find these texts in `_recent` now
                self._previous, self._recent = self._recent, fresh
                self._release(work, encoding)
            self._last = self._writer.submit(self._write, work, hold)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            with self._claims_lock:
                self._release(work, encoding)
            hold.close()
            done.set_exception(exc)
            return
        finally:
            self._finishing.release()
        self._last.add_done_callback(lambda written: _settle(done, written))

    def _finish_encoding(
        self,
        work: EmbeddingWork,
        encoding: Future,
        elsewhere: dict[str, tuple[Future, str]],
        queued: float,
    ) -> None:
        wait([encoding])
        encoding.result()
        encoded = work.encoded_at  # not when this finisher got to it
        # The encoder's time on this partition: from when it was queued, or when the encoder
        # finished the partitions before it if that came later, so that the reports add up
        # to the encoder's busy time.
        work.report.embed_seconds = max(0.0, encoded - max(queued, self._encoded_until))
        self._encoded_until = max(self._encoded_until, encoded)
        orphans = {}  # texts whose partition failed: encoded here
        for content_hash, (other, text) in elsewhere.items():
            vector = None if other.exception() else other.result().get(work.keys[content_hash])
            if vector is None:
                orphans[content_hash] = text
            else:
                work.cached[content_hash] = vector
        if orphans:  # only after an asynchronous failure: the encoder takes calls from threads
            began = time.perf_counter()
            vectors = self.embedder.encode(list(orphans.values()))
            check_vectors(vectors, self.embedder.dim)
            work.missing_texts.update(orphans)
            work.fresh.update(zip(orphans, vectors))
            work.report.embed_seconds += time.perf_counter() - began

    def _write(self, work: EmbeddingWork, hold: ExitStack) -> EmbedReport:
        try:
            return commit_embedding(work)
        finally:
            hold.close()

    def _cache(self):
        if self._cache_table is None:
            self._cache_table = storage.open_cache(self._db, self.embedder.dim)
        return self._cache_table

    def _cache_keys(self) -> set[str] | None:
        """The cache's keys, read once (keys name their model); the worker adds what it
        writes. None for a cache too large to hold in memory: then each partition looks up."""
        if self._known_keys is None and not self._too_large:
            table = self._cache()
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
