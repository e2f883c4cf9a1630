"""Loading a sentence-transformers model once per process and embedding texts with it.

Device: auto picks cuda, then mps, then cpu (overridable); fp16 on CUDA. Texts are sorted
by length so each batch pads little, and a CUDA out-of-memory halves the batch and retries.

On a GPU the model's own `encode` leaves the device idle most of the time: it tokenizes a
batch on one CPU thread, runs it, copies the result back, and only then tokenizes the next.
For a model as small as MiniLM, tokenizing takes longer than the forward pass. So on CUDA,
`encode` tokenizes batches on a few threads ahead of the device (the Rust tokenizer releases
the GIL) and copies the vectors back once per call (`tokenizer_threads`), building each batch's
features straight from the Rust tokenizer where they equal the model's own
(`fast_features.py`: 1.8x the tokens per core of the model's `preprocess`).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from indexer_core.embedding.batching import length_batch_sizes
from indexer_core.embedding.fast_features import FastFeatures, fast_features
from indexer_core.embedding.model_location import resolve_model_path
from indexer_core.embedding.prompts import model_prompts
from indexer_core.embedding.query_encoder import (
    OnnxEncoder,
    QueryEncoderOptions,
    load_onnx_encoder,
)
from indexer_core.embedding.simulated import SimulatedEncoder, load_simulated, simulated_rate

PIPELINE_BATCH = 256  # texts per tokenized batch: small enough that several are in flight


def tokenizer_threads(device: str, requested: str | int = "auto", under_gil: bool = False) -> int:
    """How many threads tokenize ahead of the model: on CUDA, up to 8 (a core is left for
    the thread that drives the GPU); elsewhere none, the model's compute is the bottleneck.
    With `under_gil` (ids from the segment cache, `wordpiece_ids`, Python that holds the
    GIL) one: it prepares batches faster than the device runs them, and more threads would
    only take the GIL from the thread that drives the device. An explicit count wins."""
    if requested != "auto":
        return max(0, int(requested))
    if not device.startswith("cuda"):
        return 0
    return 1 if under_gil else max(1, min(8, (os.cpu_count() or 2) - 1))


def pick_device(requested: str = "auto") -> str:
    """cuda, then mps, then cpu; an explicit device is taken as given."""
    if requested and requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def default_batch_size(device: str) -> int:
    """A batch that suits the device's memory: larger on big GPUs, modest on CPU."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info()
        gib = free / 2**30
        return 1024 if gib > 40 else 512 if gib > 16 else 256 if gib > 6 else 64
    return 64


def length_batches(
    longest_first: list[str], batch_size: int, max_factor: int = 8
) -> list[list[str]]:
    """Batches of texts sorted longest first (`batching.length_batch_sizes`; characters
    stand in for tokens, both being sorted alike)."""
    batches, start = [], 0
    for size in length_batch_sizes([len(t) for t in longest_first], batch_size, max_factor):
        batches.append(longest_first[start : start + size])
        start += size
    return batches


@dataclass
class Embedder:
    """A loaded model plus how to run it."""

    model_name: str
    model: Any
    device: str
    batch_size: int
    tokenizer_threads: int = 0  # threads tokenizing ahead of the device (0: the model's own encode)
    query_threads: int = 1  # torch threads for one query on the CPU
    query_prefix: str = ""  # the model's query prompt (`prompts.py`), before every query
    features: FastFeatures | None = None  # the model's own features, built faster (pipelined)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        getter = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(getter())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised float32 embeddings in the order of `texts`."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        sorted_texts = [texts[i] for i in order]
        if self.tokenizer_threads > 0 and len(texts) > 1:
            try:
                return self._encode_pipelined(sorted_texts, order)
            except RuntimeError as exc:
                if "out of memory" not in str(exc).lower():
                    raise
                self._release_cuda_memory()  # then one batch at a time, halving as needed
        return self._encode_batched(sorted_texts, order)

    def _encode_batched(self, sorted_texts: list[str], order: list[int]) -> np.ndarray:
        """The model's own encode, one batch at a time; a batch out of memory is halved."""
        out = np.empty((len(order), self.dim), dtype=np.float32)
        start = 0
        while start < len(sorted_texts):
            batch = sorted_texts[start : start + self.batch_size]
            try:
                vectors = self.model.encode(
                    batch,
                    batch_size=len(batch),
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            except RuntimeError as exc:
                if "out of memory" not in str(exc).lower() or self.batch_size == 1:
                    raise
                self._release_cuda_memory()
                self.batch_size = max(1, self.batch_size // 2)
                continue
            for offset, vector in enumerate(vectors):
                out[order[start + offset]] = vector
            start += len(batch)
        return out

    def _encode_pipelined(self, sorted_texts: list[str], order: list[int]) -> np.ndarray:
        """Tokenize batches on worker threads while the device runs the ones already done.

        The same steps as the model's own encode (its `preprocess`, forward pass, L2
        normalisation), so the vectors are the same; only the overlap differs. The vectors
        stay on the device until the last batch, then come back in one copy.
        """
        import torch

        model = self.model
        preprocess = (
            self.features
            or getattr(model, "preprocess", None)
            or model.tokenize  # older sentence-transformers name it `tokenize`
        )
        size = max(1, min(self.batch_size, PIPELINE_BATCH))
        batches = length_batches(sorted_texts, size)
        # The first batch on this thread: the tokenizer settles its padding and truncation
        # settings once, so the worker threads only read them.
        first = preprocess(batches[0])
        pool = self._tokenizer_pool()
        ahead: deque[Future] = deque()
        pending = iter(batches[1:])

        def refill() -> None:
            while len(ahead) < 2 * self.tokenizer_threads:
                batch = next(pending, None)
                if batch is None:
                    return
                ahead.append(pool.submit(preprocess, batch))

        refill()
        vectors: list[Any] = []
        features = first
        try:
            with torch.inference_mode():
                while features is not None:
                    on_device = {
                        k: v.to(self.device, non_blocking=True)
                        if isinstance(v, torch.Tensor)
                        else v
                        for k, v in features.items()
                    }
                    embedded = model(on_device)["sentence_embedding"]
                    vectors.append(torch.nn.functional.normalize(embedded.float(), p=2, dim=1))
                    refill()
                    features = ahead.popleft().result() if ahead else None
                stacked = torch.cat(vectors).cpu().numpy()
        finally:
            for future in ahead:
                future.cancel()
        out = np.empty((len(order), self.dim), dtype=np.float32)
        out[np.asarray(order)] = stacked
        return out

    def _tokenizer_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.tokenizer_threads, thread_name_prefix="tokenizer")
        return self._pool

    def encode_query(self, text: str) -> np.ndarray:
        """One query's embedding. On CPU it runs on `query_threads` torch threads: a single
        short text gains nothing from more, and on a busy machine more threads only wait on
        each other (bench/search_latency.py: 2 threads p50 64 ms, 1 thread 21 ms, 2 cores)."""
        text = self.query_prefix + text
        if not self.device.startswith("cpu"):
            return self.encode([text])[0]
        import torch

        previous = torch.get_num_threads()
        if previous != self.query_threads:
            torch.set_num_threads(self.query_threads)
        try:
            return self.encode([text])[0]
        finally:
            if previous != self.query_threads:
                torch.set_num_threads(previous)

    def _release_cuda_memory(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


@lru_cache(maxsize=2)
def load_embedder(
    model: str,
    device: str = "auto",
    batch_size: int = 0,
    tokenizer_threads_wanted: str | int = "auto",
    query_threads: int = 1,
) -> Embedder | SimulatedEncoder:
    """The embedder for a model, loaded once per process (cached by its arguments).

    `tokenizer_threads_wanted`: threads that tokenize ahead of the device ("auto": on CUDA
    only, see `tokenizer_threads`); `query_threads`: torch threads for one query on the CPU.
    A `simulated:TOKENS_PER_SECOND` device gives an encoder of that speed (`simulated.py`).
    """
    if simulated_rate(device) is not None:
        return load_simulated(model, device, batch_size)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()

    chosen = pick_device(device)
    path = resolve_model_path(model)
    st_model = SentenceTransformer(str(path), device=chosen)
    if chosen.startswith("cuda"):
        st_model = st_model.half()
    st_model.eval()
    threads = tokenizer_threads(chosen, tokenizer_threads_wanted)
    features = fast_features(st_model) if threads else None
    if features is not None and features.ids is not None:
        threads = tokenizer_threads(chosen, tokenizer_threads_wanted, under_gil=True)
    return Embedder(
        model_name=model,
        model=st_model,
        device=chosen,
        batch_size=batch_size or default_batch_size(chosen),
        tokenizer_threads=threads,
        query_threads=query_threads,
        query_prefix=model_prompts(model).query,
        features=features,
    )


_ACCELERATOR_DEVICES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def runs_on_cpu(device: str) -> bool:
    """Whether `device` means the CPU, decided without importing torch: `cpu`, or `auto` on
    a machine with no GPU device node (and not macOS, where `auto` may pick mps)."""
    if device.startswith("cpu"):
        return True
    if device != "auto" or sys.platform == "darwin":
        return False
    return not any(os.path.exists(path) for path in _ACCELERATOR_DEVICES)


def load_encoder(
    model: str,
    device: str = "auto",
    batch_size: int = 0,
    tokenizer_threads_wanted: str | int = "auto",
    onnx: QueryEncoderOptions | None = None,
) -> Embedder | SimulatedEncoder | OnnxEncoder:
    """The fastest encoder for indexing with `model` on `device`.

    On the CPU that is the model's ONNX export on every core when there is one (made by an
    earlier run, `query_encoder.export_for_queries`): ONNX Runtime loads in a fraction of a
    second where importing torch takes seconds, and encodes faster; its vectors match the
    model's (checked when exported). Elsewhere, or without an export, the model itself.
    """
    if onnx is not None and simulated_rate(device) is None and runs_on_cpu(device):
        fast = load_onnx_encoder(model, onnx, 1, batch_size, workers=os.cpu_count() or 1)
        if fast is not None:
            return fast
    return load_embedder(model, device, batch_size, tokenizer_threads_wanted)
