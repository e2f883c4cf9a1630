"""Query embeddings on ONNX Runtime: the index's own model, without importing torch.

A one-shot `code-index search` spent most of its 16 s importing sentence-transformers
(11.6 s: torch, transformers, scikit-learn). A query needs none of that: the model is a
transformer followed by pooling and normalisation. So the first search on a machine exports
the model's transformer to ONNX (a few seconds, once), checks that the exported model gives
the model's own vectors, and later searches load it with `onnxruntime` and `tokenizers`
(0.2 s to import, 0.4 s to load, ~8 ms a query on one core).

Only models made of a Transformer, a Pooling (mean, CLS or max) and optionally a Normalize
module are exported; any other model, a missing `onnx`/`onnxruntime`, or an export whose
vectors differ from the model's keeps the sentence-transformers path. The exported file is
keyed by the model directory's files (names, sizes, modification times), so a changed model
is exported again. `QueryEncoderOptions(mode="torch")` turns the ONNX path off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from indexer_core.embedding.model_location import resolve_model_path
from indexer_core.embedding.shared_batches import BatchPool

if TYPE_CHECKING:
    from indexer_core.embedding.wordpiece_ids import WordPieceIds

log = logging.getLogger(__name__)

MAX_DIFFERENCE = 1e-4  # largest element-wise difference from the model's own vectors
_PROBES = [
    "parse the header of a request",
    "HttpClient.sendAll",
    "def f(x):\n    return x * 2",
    "Return the file number of the current file.",
    "x",
    "déjà vu: ünïcödé 🙂 " * 40,
]
_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


@dataclass(frozen=True)
class QueryEncoderOptions:
    """How queries are embedded.

    `mode`: "auto" (the ONNX export when there is one, made on first use) or "torch" (never
    the export); `cache_dir`: where exports live (default: the user's cache directory);
    `threads`: threads for one query.
    """

    mode: str = "auto"
    cache_dir: str | None = None
    threads: int = 1

    def cache_root(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "code-index" / "onnx"


DEFAULT_OPTIONS = QueryEncoderOptions()


@dataclass(frozen=True)
class ModelLayout:
    """What a query needs besides the transformer: how to pool, whether to normalise."""

    directory: Path
    pooling: str  # mean | cls | max
    normalize: bool
    dim: int
    max_tokens: int


def model_layout(model_dir: Path) -> ModelLayout | None:
    """The layout of a sentence-transformers model directory, or None when it holds more
    than Transformer -> Pooling -> (Normalize), or a pooling this module does not do."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        types = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if types not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        if modules[0].get("path", "") != "" or not (model_dir / "tokenizer.json").is_file():
            return None
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
        modes = [name for key, name in _POOLING_MODES.items() if pooling.get(key)]
        others = [
            k
            for k, v in pooling.items()
            if k.startswith("pooling_mode_") and v and k not in _POOLING_MODES
        ]
        if len(modes) != 1 or others:
            return None
        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        return ModelLayout(
            directory=model_dir,
            pooling=modes[0],
            normalize=types[-1] == "Normalize",
            dim=int(pooling["word_embedding_dimension"]),
            max_tokens=int(config["max_seq_length"]),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def export_path(
    model: str, model_dir: Path, options: QueryEncoderOptions = DEFAULT_OPTIONS
) -> Path:
    """The exported file's place, keyed by the model directory's files."""
    digest = hashlib.blake2b(digest_size=10)
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(
            f"{path.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
        )
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)[:60]
    return options.cache_root() / f"{name}-{digest.hexdigest()}" / "model.onnx"


def export_target(
    model: str, options: QueryEncoderOptions = DEFAULT_OPTIONS
) -> tuple[ModelLayout, Path] | None:
    """The model's layout and where its export lives; None for a layout that is not exported."""
    model_dir = resolve_model_path(model)
    layout = model_layout(model_dir)
    return None if layout is None else (layout, export_path(model, model_dir, options))


@dataclass
class _Queued:
    """An `encode_async` call's texts in the pool, and where their vectors go."""

    encodings: list[tuple[list[int], list[int] | int]]
    out: np.ndarray
    result: Future[np.ndarray]


@dataclass
class OnnxEncoder:
    """`embedding.Embedder`'s interface on ONNX Runtime (CPU): one query at a time for
    search, length-sorted batches for indexing (`load_onnx_encoder`)."""

    model_name: str
    layout: ModelLayout
    session: Any
    tokenizer: Any
    device: str = "cpu (onnxruntime)"
    batch_size: int = 4  # texts of the longest length per batch (more of shorter ones)
    query_prefix: str = ""  # the model's query prompt (`prompts.py`)
    workers: int = 1  # batches run at once when encoding many, each on one thread
    _workers_pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _batches: BatchPool = field(default_factory=BatchPool, repr=False)  # texts for the workers
    _ids: WordPieceIds | Literal[False] | None = field(default=None, repr=False)  # False: none

    @property
    def dim(self) -> int:
        return self.layout.dim

    @property
    def max_tokens(self) -> int:
        return self.layout.max_tokens

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised (if the model normalises) float32 embeddings in the order of `texts`.

        Texts are sorted by token count and cut into small batches, each padded only to its
        own longest text (`shared_batches`); `workers` batches run at once, each
        on one thread. On a CPU that beats one batch at a time on every core: small batches
        stay in cache and pad little, and no core waits for another between operators
        (bench/embedding_cpu_batches.md). The vectors do not depend on the batching.
        """
        return self.encode_async(texts).result()

    def encode_async(self, texts: list[str]) -> Future[np.ndarray]:
        """`encode`, returning once the texts are queued: the future holds their vectors.
        Texts of successive calls wait in one pool (`shared_batches`) for the same `workers`
        threads, so a caller that queues the next texts before the last batches of the
        previous ones finish keeps every thread busy across the seam, and a batch of the
        older call fills with the newer call's texts of about its length instead of padding
        its own shorter ones; waiting for each call instead leaves all threads but one idle
        while its last batch runs."""
        result: Future[np.ndarray] = Future()
        result.set_running_or_notify_cancel()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        encodings = self._token_ids(texts) if texts else []
        lengths = [len(ids) for ids, _ in encodings]
        if not texts:
            result.set_result(out)
            return result
        if self.workers <= 1 or (self._workers_pool is None and len(texts) <= self.batch_size):
            try:
                self._encode_here(encodings, lengths, out)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result.set_exception(exc)
            else:
                result.set_result(out)
            return result
        self._batches.add(lengths, _Queued(encodings, out, result), self.batch_size)
        pool = self._batch_pool()
        for _ in range(self.workers):
            pool.submit(self._run_waiting)
        return result

    @property
    def tokens(self) -> int:
        """The texts' own tokens, over every batch this encoder ran."""
        return self._batches.tokens

    @property
    def padded_tokens(self) -> int:
        """The tokens its batches ran, each row padded to its batch's longest."""
        return self._batches.padded_tokens

    def _encode_here(self, encodings: list, lengths: list[int], out: np.ndarray) -> None:
        """One call's batches into `out`, one after another in the calling thread (one
        worker, or a call too small for more than one batch)."""
        here = BatchPool()
        here.add(lengths, None, self.batch_size)
        while batch := here.take():
            rows = [w.row for w in batch]
            out[rows] = self._run_batch([encodings[i] for i in rows])
        self._batches.count(here.tokens, here.padded_tokens)

    def _run_waiting(self) -> None:
        """On a worker thread: run batches from the pool until none waits."""
        while batch := self._batches.take():
            try:
                vectors = self._run_batch([w.call.payload.encodings[w.row] for w in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to the calls' callers
                for call in self._batches.fail(batch):
                    call.payload.result.set_exception(exc)
                continue
            for w, vector in zip(batch, vectors):
                w.call.payload.out[w.row] = vector
            for call in self._batches.encoded(batch):
                call.payload.result.set_result(call.payload.out)

    def _token_ids(self, texts: list[str]) -> list[tuple[list[int], list[int] | int]]:
        """Each text's (ids, type ids or the one type id of all), from the segment cache
        where it gives the tokenizer's own ids (`wordpiece_ids`), else from the tokenizer.
        The cache is built on the first bulk encode, so a query never waits for it."""
        from indexer_core.embedding.wordpiece_ids import WordPieceIds, token_ids

        if self._ids is None:
            self._ids = WordPieceIds.from_tokenizer(self.tokenizer, self.max_tokens) or False
        rows, type_ids = token_ids(texts, self.tokenizer, self._ids or None)
        if isinstance(type_ids, int):
            return [(ids, type_ids) for ids in rows]
        return list(zip(rows, type_ids))

    def _run_batch(self, encodings: list[tuple[list[int], list[int] | int]]) -> np.ndarray:
        """One batch through the session (which releases the GIL while it runs)."""
        width = max(len(ids) for ids, _ in encodings)
        feeds = {
            name: np.zeros((len(encodings), width), dtype=np.int64)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        }
        for r, (ids, type_ids) in enumerate(encodings):
            n = len(ids)
            feeds["input_ids"][r, :n] = ids
            feeds["attention_mask"][r, :n] = 1
            feeds["token_type_ids"][r, :n] = type_ids
        hidden = self.session.run(None, feeds)[0].astype(np.float32)
        return self._pool(hidden, feeds["attention_mask"])

    def _batch_pool(self) -> ThreadPoolExecutor:
        if self._workers_pool is None:
            self._workers_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnx")
        return self._workers_pool

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The model's pooling over each row's real tokens, then its normalisation."""
        if self.layout.pooling == "cls":
            vectors = hidden[:, 0]
        elif self.layout.pooling == "max":
            vectors = np.where(mask[..., None] > 0, hidden, -np.inf).max(axis=1)
        else:
            weights = mask[..., None].astype(np.float32)
            vectors = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.layout.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors.astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """A query's embedding, after the model's query prefix."""
        return self._embed(self.query_prefix + text)

    def _embed(self, text: str) -> np.ndarray:
        encoding = self.tokenizer.encode(text)
        feeds = {
            "input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        hidden = self.session.run(None, feeds)[0][0].astype(np.float32)
        mask = feeds["attention_mask"][0].astype(bool)
        if self.layout.pooling == "cls":
            vector = hidden[0]
        elif self.layout.pooling == "max":
            vector = hidden[mask].max(axis=0)
        else:
            vector = hidden[mask].mean(axis=0)
        if self.layout.normalize:
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return vector.astype(np.float32)


def load_onnx_query_encoder(
    model: str, options: QueryEncoderOptions = DEFAULT_OPTIONS
) -> OnnxEncoder | None:
    """The exported model's query encoder, or None (not exported yet, or not exportable)."""
    return load_onnx_encoder(model, options, options.threads)


def load_onnx_encoder(
    model: str,
    options: QueryEncoderOptions = DEFAULT_OPTIONS,
    threads: int = 1,
    batch_size: int = 0,
    workers: int = 1,
) -> OnnxEncoder | None:
    """An encoder on the model's ONNX export, or None (not exported yet, not exportable,
    ONNX turned off, or a damaged export, which is removed so the model serves and exports
    again). `threads`: the session's threads for one run (a query); `workers`: batches run
    at once when encoding many; `batch_size`: 0 keeps the measured default."""
    if options.mode == "torch":
        return None
    try:
        import onnxruntime  # noqa: F401 - present, or the torch path serves
    except ImportError:
        return None
    target = export_target(model, options)
    if target is None or not target[1].is_file():
        return None
    layout, path = target
    try:
        encoder = load_from_file(model, layout, path, threads)
    except Exception as exc:  # noqa: BLE001 - a damaged export: drop it, the model serves
        log.warning(
            "the ONNX export %s does not load (%s); it is removed and torch serves", path, exc
        )
        path.unlink(missing_ok=True)
        return None
    encoder.batch_size = batch_size or encoder.batch_size
    encoder.workers = max(1, workers)
    return encoder


def export_for_queries(
    embedder, model: str | None = None, options: QueryEncoderOptions = DEFAULT_OPTIONS
) -> Path | None:
    """Export a loaded CPU sentence-transformers model for later queries; None when it cannot
    be (another layout, no `onnx`, not on the CPU) or its vectors differ from the model's."""
    model = model or embedder.model_name
    if options.mode == "torch" or not str(embedder.device).startswith("cpu"):
        return None
    try:
        import onnx  # noqa: F401 - torch's exporter needs it; without it there is nothing to do
        import torch
    except ImportError:
        return None
    target = export_target(model, options)
    if target is None:
        return None
    layout, path = target
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="export-", suffix=".onnx", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        log.warning("no room for an ONNX export of %s (%s); queries keep torch", model, exc)
        return None
    transformer = embedder.model[0].auto_model
    sample = embedder.model.tokenizer(["a b"], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    if any(n not in sample for n in names):
        os.unlink(tmp)
        return None

    class _Hidden(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shapes; the probes below decide
            torch.onnx.export(
                _Hidden(transformer).eval(),
                tuple(sample[n] for n in names),
                tmp,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        candidate = load_from_file(model, layout, Path(tmp))
        difference = float(np.abs(candidate.encode(_PROBES) - embedder.encode(_PROBES)).max())
        if difference > MAX_DIFFERENCE:
            log.warning(
                "ONNX export of %s differs from the model by %.2g; queries keep torch",
                model,
                difference,
            )
            return None
        os.replace(tmp, path)
        return path
    except Exception as exc:  # noqa: BLE001 - any exporter failure only keeps the torch path
        log.warning(
            "could not export %s for queries (%s: %s); queries keep torch",
            model,
            type(exc).__name__,
            exc,
        )
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_from_file(model: str, layout: ModelLayout, path: Path, threads: int = 1) -> OnnxEncoder:
    """An encoder over an exported file (one session, `threads` threads for each query)."""
    import onnxruntime
    from tokenizers import Tokenizer

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle pool threads sleep instead of spinning: beside chunk steps and Dagster's own
    # processes on the same cores, spinning threads take CPU from the work that feeds them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(layout.directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(layout.max_tokens)
    from indexer_core.embedding.prompts import model_prompts

    return OnnxEncoder(model, layout, session, tokenizer, query_prefix=model_prompts(model).query)
