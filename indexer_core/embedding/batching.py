"""Batches of length-sorted texts, each padded only to its own longest text.

A batch costs about (its size) x (its longest text), so texts sorted longest first are cut
into batches of `batch_size` texts of the longest length and more of shorter ones, up to
`max_factor` times as many: the padded tokens per batch stay near one budget, which keeps a
device as full on short texts as on long ones and wastes little on padding.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_FACTOR = 8  # a batch of short texts holds at most this many times `batch_size`


def length_batch_sizes(
    longest_first: Sequence[int], batch_size: int, max_factor: int = MAX_FACTOR
) -> list[int]:
    """The size of each batch over `longest_first` (lengths, sorted longest first): the
    budget is `batch_size` texts of the first length; a batch never exceeds
    `batch_size * max_factor` texts, nor goes below `batch_size`."""
    if not longest_first:
        return []
    budget = batch_size * max(1, longest_first[0])
    sizes, start = [], 0
    while start < len(longest_first):
        size = batch_size_at(longest_first[start], budget, batch_size, max_factor)
        size = min(size, len(longest_first) - start)
        sizes.append(size)
        start += size
    return sizes


def batch_size_at(longest: int, budget: int, batch_size: int, max_factor: int = MAX_FACTOR) -> int:
    """Texts in a batch led by a text of `longest` tokens: as many as `budget` padded tokens
    hold, at least `batch_size`, at most `batch_size * max_factor`."""
    return min(batch_size * max_factor, max(batch_size, budget // max(1, longest)))
