"""An encoder that takes the time a device of a given speed would, for measuring the pipeline.

`device="simulated:TOKENS_PER_SECOND"` (for example `simulated:360000`, an H100's measured
rate for all-MiniLM-L6-v2) answers "what would this pipeline do beside that device?" on any
machine: it prepares each batch as the real GPU path does (`fast_features.py`: the model's
token ids, cut at its limit, padded into arrays), then waits for the batch's tokens at that
rate, and returns unit vectors of the model's dimension that depend only on each text, as a
real model's would. So the pipeline's own
costs (step launch, reads, cache look-ups, writes) show beside an encoder of known speed,
and a run's encode time is known exactly (`simulated_seconds`, `device_tokens`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from indexer_core.chunking.tokens import TokenCounter, load_token_counter
from indexer_core.embedding.fast_features import FastFeatures, device_tokenizer
from indexer_core.embedding.model_location import model_dimension
from indexer_core.embedding.wordpiece_ids import WordPieceIds, token_ids

PREFIX = "simulated:"


def simulated_rate(device: str) -> float | None:
    """The tokens per second of a `simulated:RATE` device, None for any other device."""
    if not device.startswith(PREFIX):
        return None
    rate = float(device[len(PREFIX) :])
    if rate <= 0:
        raise ValueError(f"device {device!r}: the simulated rate must be positive")
    return rate


@dataclass
class SimulatedEncoder:
    """The `Embedder` interface at a fixed speed (see the module docstring)."""

    model_name: str
    counter: TokenCounter
    tokens_per_second: float
    dim: int
    features: FastFeatures  # the model's input features, as the real GPU path builds them
    batch_size: int = 256
    tokenizer_threads: int = 0
    simulated_seconds: float = 0.0  # the device time of every encode so far
    tokens: int = 0
    _started: float = field(default=0.0, repr=False)

    @property
    def device(self) -> str:
        return f"{PREFIX}{self.tokens_per_second:g}"

    @property
    def max_tokens(self) -> int:
        return self.counter.max_tokens

    def device_tokens(self, texts: list[str]) -> int:
        """The tokens a device runs for `texts`: special tokens in, each text cut at the
        model's limit, as the real GPU path builds its batches."""
        rows, _ = token_ids(texts, self.features.tokenizer, self.features.ids)
        return sum(map(len, rows))

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            began = time.perf_counter()
            tokens = int(self.features.arrays(batch)["attention_mask"].sum())
            seconds = tokens / self.tokens_per_second
            self.tokens += tokens
            self.simulated_seconds += seconds
            out[start : start + len(batch)] = _unit_vectors(batch, self.dim)
            # The device runs while the host tokenized: only the rest is waited for.
            remaining = seconds - (time.perf_counter() - began)
            if remaining > 0:
                time.sleep(remaining)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def load_simulated(model: str, device: str, batch_size: int = 0) -> SimulatedEncoder:
    """A simulated encoder for `model` (its tokenizer and dimension) at `device`'s rate."""
    rate = simulated_rate(device)
    if rate is None:
        raise ValueError(f"not a simulated device: {device!r}")
    counter = load_token_counter(model)
    tokenizer = device_tokenizer(counter.tokenizer, counter.max_tokens)  # the counter's untouched
    features = FastFeatures(
        tokenizer=tokenizer,
        pad_id=0,  # what fills the padding is no concern of a device that only counts tokens
        pad_type_id=0,
        ids=WordPieceIds.from_tokenizer(tokenizer, counter.max_tokens),
    )
    return SimulatedEncoder(
        model_name=model,
        counter=counter,
        tokens_per_second=rate,
        dim=model_dimension(model) or 384,
        features=features,
        batch_size=batch_size or 256,
    )


def _unit_vectors(texts: list[str], dim: int) -> np.ndarray:
    """One unit vector per text, a function of the text alone. Drawn from the text's own
    SHAKE-128 stream in one array operation per batch: ~4 us a text where a seeded Gaussian
    draw took ~43 us, host time a real device does not cost (85k texts: 3.6 s of CPU)."""
    raw = b"".join(
        hashlib.shake_128(text.encode("utf-8", "surrogatepass")).digest(2 * dim) for text in texts
    )
    vectors = np.frombuffer(raw, dtype="<i2").reshape(len(texts), dim).astype(np.float32)
    vectors += 0.5  # int16 is asymmetric around 0; centred, and never all zero
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
