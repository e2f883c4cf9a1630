"""The one configurable resource: where the index lives and how it is built.

Defaults come from environment variables so the CLI, `dagster dev` and tests agree without
a config file; run config (Launchpad or `dagster asset materialize -c`) overrides any field.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from indexer_core.embedding.model_location import DEFAULT_MODEL
from indexer_core.indexing.settings import IndexSettings
from orchestration.partitions import shard_count


def default_home() -> Path:
    """`$CODE_INDEX_HOME`, else `.code-index` in the current directory."""
    return Path(os.environ.get("CODE_INDEX_HOME", ".code-index")).expanduser().resolve()


def default_db_uri() -> str:
    return os.environ.get("CODE_INDEX_DB", str(default_home() / "lancedb"))


class CodeIndexResource(dg.ConfigurableResource):
    """Where the LanceDB tables live, which model embeds, and the limits for files."""

    db_uri: str = Field(default_factory=default_db_uri, description="LanceDB directory or URI")
    model: str = Field(
        default_factory=lambda: os.environ.get("CODE_INDEX_MODEL", DEFAULT_MODEL),
        description="sentence-transformers model name or path (default: the packaged offline model)",
    )
    device: str = Field(
        default_factory=lambda: os.environ.get("CODE_INDEX_DEVICE", "auto"),
        description="auto (cuda, mps, cpu), or a torch device such as cuda:1",
    )
    batch_size: int = Field(default=0, description="embedding batch size; 0 picks one from memory")
    max_file_bytes: int = Field(default=2_000_000, description="files larger than this are skipped")
    extra_ignores: list[str] = Field(default_factory=list, description="gitignore-style patterns")
    rehash: bool = Field(
        default=False, description="hash every file again instead of trusting size+mtime"
    )
    watch_repositories: bool = Field(
        default_factory=lambda: os.environ.get("CODE_INDEX_WATCH", "on") != "off",
        description="sensor: skip the stat scan while inotify has seen no change (full scan every 10 min)",
    )

    def settings(self) -> IndexSettings:
        return IndexSettings(
            model=self.model,
            shards=shard_count(),
            max_file_bytes=self.max_file_bytes,
            extra_ignores=tuple(self.extra_ignores),
        )
