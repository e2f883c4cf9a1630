"""The run timeline's overlap figures: pipelined partitions' spans counted once."""

from bench.events import Bar, Timeline, busy_spans, overlap


def _bar(start: float, end: float, lane: str = "embedding") -> Bar:
    return Bar(lane, f"p{start}", start, end)


def test_pipelined_partitions_count_their_shared_seconds_once() -> None:
    # Read, encode and write overlap: three partitions in hand across 0-10 s, then a gap.
    embedded = [_bar(0, 4), _bar(1, 7), _bar(3, 10), _bar(12, 14)]
    assert busy_spans(embedded) == [(0, 10), (12, 14)]
    chunking = [_bar(0, 5, "chunk_shard_first"), _bar(1, 6, "chunk_shard[a]")]
    step = Bar("embed_as_chunks_land", "embed step", -1.0, 15.0, ready=-0.5)
    figures = overlap(Timeline(0.0, 15.0, chunking, embedded, step, {}))
    assert figures["embedding_busy_s"] == 12.0  # not 4 + 6 + 7 + 2 = 19
    assert figures["embedding_during_chunking_s"] == 6.0  # 0-6 s of the first span
    assert figures["embedding_worker_idle_s"] == 4.0  # 16 s of life, 12 busy
    assert figures["chunk_steps"] == 2
