"""Batches formed across the encode calls that wait for the encoder's threads.

The embedding consumer encodes partition after partition, queuing the next one's texts
before the last batches of the one before finish. Sorted and cut into batches one call at a
time, a partition's few texts are sparse in length, so each batch pads further to its longest
text than it would in one sorted list of all the texts: on CPython's `logging`, `http` and
`urllib` (1,235 chunks in 10 partitions) batches of 4 cut partition by partition computed
3.1% more padded tokens than one sorted list (4.5% weighting each row by its length, as
attention does), and the model computes padding like any other token.

Here the texts of every queued call wait in one pool, and each batch is formed when a thread
is free to run it: the longest waiting text of the oldest call leads, and the batch fills
with the longest waiting texts no longer than it, from any call. The oldest call still leads,
so it finishes first, about as soon as before; its batches take the next call's texts of
about the same length instead of padding its own shorter ones. One call alone is cut exactly
as `batching.length_batch_sizes` cuts it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from indexer_core.embedding.batching import MAX_FACTOR, batch_size_at


@dataclass(eq=False)
class PendingCall:
    """One call's texts in the pool: `payload` is the caller's (what a batch needs)."""

    payload: Any
    batch_size: int  # texts of its longest length per batch
    budget: int  # padded tokens of one of its batches: batch size x its longest text
    sequence: int
    waiting: int  # texts not yet taken into a batch
    left: int  # texts not yet encoded
    failed: bool = False


@dataclass(frozen=True)
class Waiting:
    """A text waiting for a batch: its token count, its call and its row in that call."""

    length: int
    call: PendingCall
    row: int


@dataclass
class BatchPool:
    """The texts of the queued calls, longest first, cut into batches as threads free up."""

    max_factor: int = MAX_FACTOR
    tokens: int = 0  # the texts' own tokens, over every batch taken
    padded_tokens: int = 0  # what the batches ran: each row padded to its batch's longest
    _waiting: list[Waiting] = field(default_factory=list)  # longest first, then oldest call
    _calls: list[PendingCall] = field(default_factory=list)  # oldest first, texts waiting
    _sequence: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, lengths: list[int], payload: Any, batch_size: int) -> PendingCall:
        """Queue one call's texts (their token counts, in the call's order), to be cut into
        batches of `batch_size` texts of its longest length (more of shorter ones)."""
        with self._lock:
            self._sequence += 1
            longest = max(lengths, default=1)
            call = PendingCall(
                payload,
                batch_size=batch_size,
                budget=batch_size * max(1, longest),
                sequence=self._sequence,
                waiting=len(lengths),
                left=len(lengths),
            )
            if lengths:
                self._calls.append(call)
                self._waiting += [Waiting(n, call, row) for row, n in enumerate(lengths)]
                self._waiting.sort(key=lambda w: (-w.length, w.call.sequence, w.row))
            return call

    def take(self) -> list[Waiting]:
        """The next batch (empty when nothing waits): the oldest call's longest waiting
        text, then the longest waiting texts no longer than it, as many as its call's
        budget holds at that length (at least `batch_size`, at most `max_factor` times)."""
        with self._lock:
            if not self._calls:
                return []
            oldest = self._calls[0]
            start = next(i for i, w in enumerate(self._waiting) if w.call is oldest)
            size = batch_size_at(
                self._waiting[start].length, oldest.budget, oldest.batch_size, self.max_factor
            )
            batch = self._waiting[start : start + size]
            del self._waiting[start : start + size]
            for w in batch:
                w.call.waiting -= 1
            self._calls = [call for call in self._calls if call.waiting]
            self.tokens += sum(w.length for w in batch)
            self.padded_tokens += len(batch) * max(w.length for w in batch)
            return batch

    def count(self, tokens: int, padded_tokens: int) -> None:
        """Add batches run elsewhere (a call encoded in its caller's thread)."""
        with self._lock:
            self.tokens += tokens
            self.padded_tokens += padded_tokens

    def encoded(self, batch: list[Waiting]) -> list[PendingCall]:
        """Count a batch's texts as encoded: the calls it completed (none that failed)."""
        with self._lock:
            done = []
            for w in batch:
                w.call.left -= 1
                if w.call.left == 0 and not w.call.failed:
                    done.append(w.call)
            return done

    def fail(self, batch: list[Waiting]) -> list[PendingCall]:
        """A batch failed: its calls fail, and their waiting texts leave the pool. The calls
        that had not failed before, for the caller to tell."""
        with self._lock:
            calls = list({id(w.call): w.call for w in batch}.values())
            newly = [call for call in calls if not call.failed]
            for call in calls:
                call.failed = True
                call.waiting = 0
            self._waiting = [w for w in self._waiting if not w.call.failed]
            self._calls = [call for call in self._calls if call.waiting]
            return newly
