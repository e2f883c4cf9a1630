"""Batches formed across queued encode calls: one call alone is cut as before, a queued call's
texts fill an older call's batches by length, and a failed batch fails only its calls."""

from __future__ import annotations

import random

from indexer_core.embedding.batching import length_batch_sizes
from indexer_core.embedding.shared_batches import BatchPool


def _drain(pool: BatchPool) -> list[list[tuple[int, int, int]]]:
    """Every batch the pool gives, as (call sequence, row, length) triples."""
    batches = []
    while batch := pool.take():
        batches.append([(w.call.sequence, w.row, w.length) for w in batch])
        pool.encoded(batch)
    return batches


def test_one_call_is_cut_as_length_batch_sizes_cuts_it() -> None:
    rng = random.Random(5)
    for batch_size in (1, 2, 4, 16):
        lengths = [rng.randint(3, 256) for _ in range(157)]
        pool = BatchPool()
        pool.add(lengths, None, batch_size)
        sizes = [len(batch) for batch in _drain(pool)]
        assert sizes == length_batch_sizes(sorted(lengths, reverse=True), batch_size)
        assert pool.tokens == sum(lengths)


def test_the_oldest_call_leads_and_fills_its_batches_with_the_next_calls_texts() -> None:
    pool = BatchPool()
    first = pool.add([100, 90, 80, 70], "first", 2)
    second = pool.add([95, 85, 300], "second", 2)
    batches = _drain(pool)
    # The oldest call's longest text leads each batch while it has texts waiting; the
    # newer call's 300-token text, longer than any of them, waits until then.
    assert batches[0] == [(1, 0, 100), (2, 0, 95)]
    assert batches[1] == [(1, 1, 90), (2, 1, 85)]
    assert batches[2] == [(1, 2, 80), (1, 3, 70)]
    assert batches[3] == [(2, 2, 300)]
    assert first.left == second.left == 0
    assert pool.padded_tokens == 2 * 100 + 2 * 90 + 2 * 80 + 300
    # Cut one call at a time, the same texts pad to 100, 80, 95 and 300.
    separate = 0
    for lengths in ([100, 90, 80, 70], [95, 85, 300]):
        one = BatchPool()
        one.add(lengths, None, 2)
        _drain(one)
        separate += one.padded_tokens
    assert pool.padded_tokens < separate


def test_queued_partitions_pad_less_together_than_one_by_one() -> None:
    """Partitions of a few dozen texts each, queued two at a time as the embedding worker
    queues them: fewer padded tokens than each cut alone, no more than one sorted list."""
    rng = random.Random(11)
    partitions = [[rng.randint(8, 256) for _ in range(rng.randint(20, 60))] for _ in range(12)]
    alone = 0
    for lengths in partitions:
        one = BatchPool()
        one.add(lengths, None, 4)
        _drain(one)
        alone += one.padded_tokens
    pool = BatchPool()
    older = pool.add(partitions[0], None, 4)
    for lengths in partitions[1:]:
        newer = pool.add(lengths, None, 4)
        while older.waiting:  # the older call's batches run before the next call is queued
            pool.encoded(pool.take())
        older = newer
    _drain(pool)
    together = pool.padded_tokens
    everything = BatchPool()
    everything.add([n for lengths in partitions for n in lengths], None, 4)
    _drain(everything)
    assert pool.tokens == everything.tokens == sum(map(sum, partitions))
    assert everything.padded_tokens <= together < alone


def test_a_failed_batch_fails_its_calls_and_their_waiting_texts_leave() -> None:
    pool = BatchPool()
    failing = pool.add([50, 40, 30, 20], "a", 1)
    other = pool.add([45, 10], "b", 1)
    batch = pool.take()
    assert [w.call for w in batch] == [failing]
    assert pool.fail(batch) == [failing]
    assert pool.fail(batch) == []  # told once
    rest = _drain(pool)
    assert rest == [[(2, 0, 45)], [(2, 1, 10)]]
    assert other.left == 0 and not other.failed and failing.failed
