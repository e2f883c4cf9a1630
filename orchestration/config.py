"""Every setting of the code index, read from the environment in this one place.

Each setting is a field of `Config` with its variable, its default (written once, here) and
what it does. `load()` reads them all; the rest of the code location takes values from the
`Config` it gets (resources, jobs, sensors, schedules, the CLI and the MCP server) and
passes them to `indexer_core` as arguments, so the core never reads a `CODE_INDEX_*`
variable. Run config overrides the fields of the `code_index` resource per run.

`python -m orchestration.config` prints the table the README shows (a test keeps them equal).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from indexer_core.embedding.model_location import DEFAULT_MODEL
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage.thresholds import ANN_MIN_ROWS, CACHE_STALE_FLOOR, MAX_FRAGMENTS

if TYPE_CHECKING:  # imported where used: numpy, which the CLI needs only later
    from indexer_core.embedding.query_encoder import QueryEncoderOptions

_DEFAULTS = IndexSettings()


def _setting(env: str, default, doc: str, shown: str | None = None):
    """A field read from `env`; `shown` is the default as the README states it, when the
    value itself depends on the machine."""
    return field(default=default, metadata={"env": env, "doc": doc, "shown": shown})


def _on(value: str) -> bool:
    return value.strip().lower() not in ("off", "0", "false", "no")


@dataclass(frozen=True)
class Config:
    """The settings, as read by `load()`; defaults are the embedded local set-up."""

    home: str = _setting(
        "CODE_INDEX_HOME", ".code-index", "where the local defaults live (LanceDB, Dagster home)"
    )
    db_uri: str = _setting(
        "CODE_INDEX_DB",
        "",
        "LanceDB directory or URI (`s3://...` works)",
        "`$CODE_INDEX_HOME/lancedb`",
    )
    model: str = _setting(
        "CODE_INDEX_MODEL",
        DEFAULT_MODEL,
        "sentence-transformers model name or path (packaged, offline)",
    )
    device: str = _setting(
        "CODE_INDEX_DEVICE",
        "auto",
        "`auto`: cuda, then mps, then cpu; fp16 on CUDA; or e.g. `cuda:1`",
    )
    batch_size: int = _setting(
        "CODE_INDEX_BATCH_SIZE",
        0,
        "embedding batch size (texts of the longest length); 0 picks one: from free GPU "
        "memory on CUDA, 4 for the ONNX encoder on CPU, else 64",
    )
    tokenizer_threads: str = _setting(
        "CODE_INDEX_TOKENIZER_THREADS",
        "auto",
        "threads tokenizing ahead of the GPU; `auto`: on CUDA, CPU count - 1 up to 8 (1 where "
        "the ids come from the segment cache, which holds the GIL), else 0",
    )
    max_file_bytes: int = _setting(
        "CODE_INDEX_MAX_FILE_BYTES",
        _DEFAULTS.max_file_bytes,
        "larger files are skipped (`too_large`)",
    )
    shards: int = _setting(
        "CODE_INDEX_SHARDS",
        _DEFAULTS.shards,
        "shards per repository (read when the code location loads; a change re-shards)",
    )
    max_concurrent: int = _setting(
        "CODE_INDEX_MAX_CONCURRENT",
        (os.cpu_count() or 1) + 1,
        "parallel steps of the multiprocess executor",
        "CPU count + 1 (the embedding consumer)",
    )
    chunk_steps: int = _setting(
        "CODE_INDEX_CHUNK_STEPS",
        os.cpu_count() or 1,
        "chunk steps per run at most (each takes several partitions when there are more)",
        "CPU count",
    )
    in_process_bytes: int = _setting(
        "CODE_INDEX_IN_PROCESS_BYTES",
        1 << 18,
        "a run for a change of at most this many bytes (new and changed files), from "
        "`code-index index` or the sensor, runs its steps one after another in its own "
        "process: no step server, no step launches; `0` turns it off",
    )
    start_method: str = _setting(
        "CODE_INDEX_START_METHOD",
        "",
        "how step processes start: `forkserver` preloading the code location, or `spawn`",
        "`forkserver` where the platform has it, else `spawn`",
    )
    query_encoder: str = _setting(
        "CODE_INDEX_QUERY_ENCODER",
        "auto",
        "`auto`: queries on ONNX Runtime from an export of the model; `torch` turns it off",
    )
    onnx_cache: str = _setting(
        "CODE_INDEX_ONNX_CACHE",
        "",
        "where the model's ONNX export for queries lives",
        "`$XDG_CACHE_HOME/code-index/onnx` (`~/.cache/...`)",
    )
    query_threads: int = _setting("CODE_INDEX_QUERY_THREADS", 1, "threads that embed one query")
    ann_min_rows: int = _setting(
        "CODE_INDEX_ANN_MIN_ROWS", ANN_MIN_ROWS, "vectors needed before an ANN index is built"
    )
    cache_stale_floor: int = _setting(
        "CODE_INDEX_CACHE_STALE_FLOOR",
        CACHE_STALE_FLOOR,
        "stale embedding-cache rows housekeeping keeps (or as many as the live rows; oldest go "
        "first)",
    )
    housekeeping_fragments: int = _setting(
        "CODE_INDEX_HOUSEKEEPING_FRAGMENTS",
        MAX_FRAGMENTS,
        "fragments that make a table due for housekeeping",
    )
    housekeeping_interval: int = _setting(
        "CODE_INDEX_HOUSEKEEPING_INTERVAL",
        300,
        "seconds between checks of the tables' fragment counts",
    )
    housekeeping_cron: str = _setting(
        "CODE_INDEX_HOUSEKEEPING_CRON", "0 4 * * 0", "when compaction and cleanup run regardless"
    )
    reconcile_cron: str = _setting(
        "CODE_INDEX_RECONCILE_CRON",
        "0 3 * * *",
        "when every repository is hashed again and reconciled",
    )
    repos: str = _setting(
        "CODE_INDEX_REPOS", "", "repositories the sensor registers: `name=path;name=path`", "none"
    )
    sensors: bool = _setting(
        "CODE_INDEX_SENSORS", True, "`off`: sensors start stopped (switch them on in the UI)", "on"
    )
    sensor_interval: int = _setting(
        "CODE_INDEX_SENSOR_INTERVAL", 30, "seconds between ticks of the change sensor"
    )
    watch: bool = _setting(
        "CODE_INDEX_WATCH",
        True,
        "inotify watch: a tick on a quiet tree skips the `stat` scan (full scan every 10 min)",
        "on",
    )

    dagster_sync: str = _setting(
        "CODE_INDEX_DAGSTER_SYNC",
        "off",
        "how the local Dagster instance's SQLite writes wait for the disk: `off` (an OS "
        "crash may lose recent run history; the index is unaffected), `normal` or `full`",
    )

    executor: str = _setting(
        "CODE_INDEX_EXECUTOR",
        "multiprocess",
        "`multiprocess`, `celery` (workers on queues `dagster` and `gpu`), `k8s` "
        "(a pod per step) or `in_process`",
    )
    embed_consumers: int = _setting(
        "CODE_INDEX_EMBED_CONSUMERS",
        1,
        "embedding consumers per run (one per GPU); they share the run's partitions",
    )
    gpu_queue: str = _setting(
        "CODE_INDEX_GPU_QUEUE", "gpu", "Celery queue of the embedding consumers"
    )
    celery_broker: str = _setting(
        "CODE_INDEX_CELERY_BROKER",
        "",
        "Celery broker URL (`redis://...`), with the executor `celery`",
        "none",
    )
    celery_backend: str = _setting(
        "CODE_INDEX_CELERY_BACKEND", "", "Celery result backend URL (default: the broker)", "none"
    )
    celery_poll_seconds: float = _setting(
        "CODE_INDEX_CELERY_POLL_SECONDS",
        0.1,
        "how often the Celery executor looks for finished steps (dagster-celery's own loop "
        "waits 1 s between looks)",
    )
    visibility_timeout: int = _setting(
        "CODE_INDEX_VISIBILITY_TIMEOUT",
        86400,
        "seconds before the broker redelivers an unacknowledged step: above the longest run",
    )
    step_outputs: str = _setting(
        "CODE_INDEX_STEP_OUTPUTS",
        "",
        "`s3://bucket/prefix` for step outputs (needed where steps run on several hosts)",
        "the Dagster home",
    )
    storage_options: str = _setting(
        "CODE_INDEX_STORAGE_OPTIONS",
        "",
        "LanceDB storage options `key=value;...` (`aws_endpoint`, `allow_http`, `aws_region`, "
        "keys); `AWS_*` variables also apply",
        "none",
    )
    lock_dsn: str = _setting(
        "CODE_INDEX_LOCK_DSN",
        "",
        "Postgres DSN for per-partition advisory locks across hosts",
        "the Dagster instance's Postgres, if any",
    )
    aws_environment: tuple = field(default=(), metadata={"env": None})

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser().resolve()

    @property
    def lancedb_uri(self) -> str:
        """The database: `db_uri`, else `lancedb` under the home."""
        return self.db_uri or str(self.home_path / "lancedb")

    @property
    def dagster_home(self) -> Path:
        """`$DAGSTER_HOME` when set (Dagster's own variable), else `dagster_home` under the home."""
        return Path(os.environ.get("DAGSTER_HOME") or self.home_path / "dagster_home").resolve()

    def index_settings(self, model: str | None = None) -> IndexSettings:
        """What decides the index's content, from these settings (`model` overrides)."""
        return IndexSettings(
            model=model or self.model, shards=self.shards, max_file_bytes=self.max_file_bytes
        )

    def query_options(self) -> QueryEncoderOptions:
        from indexer_core.embedding.query_encoder import QueryEncoderOptions

        return QueryEncoderOptions(
            mode=self.query_encoder, cache_dir=self.onnx_cache or None, threads=self.query_threads
        )

    def lancedb_storage_options(self) -> dict[str, str]:
        """`storage_options` as a dict for LanceDB (object stores only)."""
        pairs = [item.split("=", 1) for item in self.storage_options.split(";") if "=" in item]
        return {key.strip(): value.strip() for key, value in pairs}

    def aws(self) -> dict[str, str]:
        """The `AWS_*` variables (and `ALLOW_HTTP`) seen at load, which LanceDB and boto read."""
        return dict(self.aws_environment)

    def repositories(self) -> dict[str, str]:
        """`repos` as name -> path."""
        pairs = [item.split("=", 1) for item in self.repos.split(";") if "=" in item]
        return {name.strip(): path.strip() for name, path in pairs}


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Read every setting from the environment (`os.environ` unless given)."""
    environ = os.environ if environ is None else environ
    values: dict = {
        "aws_environment": tuple(
            sorted((k, v) for k, v in environ.items() if k.startswith("AWS_") or k == "ALLOW_HTTP")
        )
    }
    for f in fields(Config):
        if f.metadata["env"] is None:
            continue
        raw = environ.get(f.metadata["env"])
        if raw is None or raw.strip() == "":
            continue
        kind = type(f.default)
        try:
            values[f.name] = _on(raw) if kind is bool else kind(raw.strip())
        except ValueError:
            raise ValueError(f"{f.metadata['env']}={raw!r}: expected {kind.__name__}") from None
    return Config(**values)


def markdown_table() -> str:
    """The README's table of settings."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for f in fields(Config):
        if f.metadata["env"] is None:
            continue
        shown = f.metadata["shown"] or f"`{f.default}`"
        rows.append(f"| `{f.metadata['env']}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
