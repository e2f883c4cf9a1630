"""The one configurable resource: where the index lives and how it is built.

Its defaults come from `orchestration.config` (the environment, read there), so the CLI,
`dagster dev` and tests agree without a config file; run config (Launchpad or
`dagster asset materialize -c`) overrides any field for one run.
"""

from __future__ import annotations

from dataclasses import replace

import dagster as dg
from pydantic import Field

from indexer_core.embedding.query_encoder import QueryEncoderOptions
from indexer_core.indexing.settings import IndexSettings
from orchestration import config, scale_out


class CodeIndexResource(dg.ConfigurableResource):
    """Where the LanceDB tables live, which model embeds, and the limits for files."""

    db_uri: str = Field(
        default_factory=lambda: config.load().lancedb_uri, description="LanceDB directory or URI"
    )
    model: str = Field(
        default_factory=lambda: config.load().model,
        description="sentence-transformers model name or path "
        "(default: the packaged offline model)",
    )
    device: str = Field(
        default_factory=lambda: config.load().device,
        description="auto (cuda, mps, cpu), or a torch device such as cuda:1",
    )
    batch_size: int = Field(
        default_factory=lambda: config.load().batch_size,
        description="embedding batch size; 0 picks one from memory",
    )
    tokenizer_threads: str = Field(
        default_factory=lambda: config.load().tokenizer_threads,
        description="threads tokenizing ahead of the GPU (auto, or a number)",
    )
    max_file_bytes: int = Field(
        default_factory=lambda: config.load().max_file_bytes,
        description="files larger than this are skipped",
    )
    extra_ignores: list[str] = Field(default_factory=list, description="gitignore-style patterns")
    chunk_steps: int = Field(
        default_factory=lambda: config.load().chunk_steps,
        description="chunk steps per run at most; a run of more partitions gives each step several",
    )
    rehash: bool = Field(
        default=False, description="hash every file again instead of trusting size+mtime"
    )
    watch_repositories: bool = Field(
        default_factory=lambda: config.load().watch,
        description="sensor: skip the stat scan while inotify has seen no change "
        "(full scan every 10 min)",
    )
    cache_stale_floor: int = Field(
        default_factory=lambda: config.load().cache_stale_floor,
        description="stale embedding-cache rows housekeeping keeps (oldest go first)",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Storage options and cross-host locks for this process (`scale_out.install`)."""
        settings = config.load()
        scale_out.install(settings, context.instance)
        scale_out.check_locks(settings, self.db_uri)

    def settings(self) -> IndexSettings:
        return replace(
            config.load().index_settings(self.model),
            max_file_bytes=self.max_file_bytes,
            extra_ignores=tuple(self.extra_ignores),
        )

    def query_options(self) -> QueryEncoderOptions:
        return config.load().query_options()
