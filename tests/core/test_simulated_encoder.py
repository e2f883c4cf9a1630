"""The simulated device the benchmarks divide by: its vectors behave like a model's (unit
length, a function of the text alone, whatever the batch) and it charges exactly the real
tokenizer's tokens at its rate."""

from __future__ import annotations

import numpy as np
import pytest

from indexer_core.embedding.model_location import DEFAULT_MODEL
from indexer_core.embedding.simulated import load_simulated, simulated_rate

TEXTS = [
    "def parse(header):\n    return header.split(':')",
    "class Cache:\n    def get(self, key):\n        return self.items[key]",
    'fn main() { println!("héllo"); }',
    "",
    "x" * 3000,
    "token " * 600,  # over the model's limit
]


def test_vectors_are_unit_length_and_depend_only_on_the_text() -> None:
    encoder = load_simulated(DEFAULT_MODEL, "simulated:50000000", batch_size=2)
    together = encoder.encode(TEXTS)
    alone = np.stack([encoder.encode([text])[0] for text in reversed(TEXTS)])[::-1]
    assert together.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(together, alone)
    cosines = together @ together.T
    assert np.all(np.abs(cosines[~np.eye(len(TEXTS), dtype=bool)]) < 0.5)


def test_it_charges_the_tokens_a_device_runs_at_its_rate() -> None:
    """Special tokens in, each text cut at the model's limit: what the model's own features
    hold (their attention mask), so the charge is the real device's work."""
    encoder = load_simulated(DEFAULT_MODEL, "simulated:50000000")
    assert encoder.features.ids is not None  # ids from the segment cache, as on a GPU
    encoder.encode(TEXTS)
    whole = [len(e.ids) for e in encoder.counter.tokenizer.encode_batch(TEXTS)]
    limit = encoder.max_tokens
    assert whole[-1] > limit  # the long text is cut
    tokens = sum(min(n, limit) for n in whole)
    assert encoder.tokens == encoder.device_tokens(TEXTS) == tokens > len(TEXTS)
    assert encoder.simulated_seconds == pytest.approx(tokens / 50_000_000)


def test_only_a_positive_rate_is_a_simulated_device() -> None:
    assert simulated_rate("simulated:360000") == 360000.0
    assert simulated_rate("cuda:0") is None
    with pytest.raises(ValueError, match="positive"):
        simulated_rate("simulated:0")
