"""A deterministic stand-in for the model, so reliability tests spend their time on I/O.

The vectors depend only on the text, like a real model's, so a rerun after a crash must
produce exactly the vectors of a clean run. `delay` per batch widens the embedding window
that the kill tests aim at, as a GPU's time would.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np

DIM = 384


@dataclass
class HashEmbedder:
    model_name: str = "hash-embedder-test"
    device: str = "cpu"
    batch_size: int = 16
    delay: float = 0.0
    dim: int = DIM

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.batch_size):
            for i, text in enumerate(texts[start : start + self.batch_size], start):
                seed = int.from_bytes(
                    hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                    "big",
                )
                vector = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
                out[i] = vector / np.linalg.norm(vector)
            if self.delay:
                time.sleep(self.delay)
        return out
