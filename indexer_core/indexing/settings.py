"""What decides the index's content apart from the repository: settings and the chunker's
identity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: settings are read long before anything is chunked
    from indexer_core.discovery.listing import DiscoveryConfig
from indexer_core.embedding.model_location import DEFAULT_MODEL

# Bump when chunk boundaries, the embedded text or the full-text `search_text` change:
# every partition then re-chunks.
CHUNKER_VERSION = "10"


@dataclass(frozen=True)
class IndexSettings:
    """Everything that decides what the index holds, apart from the repository itself."""

    model: str = DEFAULT_MODEL
    # Small partitions land (and reach the embedder) sooner and balance across consumers;
    # chunk steps take several each, so more shards cost no more step processes.
    shards: int = 32
    max_file_bytes: int = 2_000_000
    extra_ignores: tuple[str, ...] = ()
    use_git: bool = True

    def discovery(self) -> DiscoveryConfig:
        from indexer_core.discovery.listing import DiscoveryConfig

        return DiscoveryConfig(
            max_file_bytes=self.max_file_bytes,
            extra_ignores=self.extra_ignores,
            use_git=self.use_git,
        )


@lru_cache(maxsize=4)
def chunker_fingerprint(model: str) -> str:
    """Identifies the chunk boundaries: chunker version plus the tokenizer and its limit.

    Two models that share a tokenizer share chunks, so a model change re-embeds without
    re-parsing; a tokenizer change re-chunks, since the token bound depends on it.
    """
    from indexer_core.chunking.tokens import load_token_counter

    counter = load_token_counter(model)
    tokenizer_digest = hashlib.blake2b(counter.tokenizer.to_str().encode(), digest_size=8)
    fingerprint = f"v{CHUNKER_VERSION}-{tokenizer_digest.hexdigest()}-{counter.max_tokens}"
    if counter.document_prefix:  # it is part of every embedded text and of the budget
        prefix = hashlib.blake2b(counter.document_prefix.encode(), digest_size=4).hexdigest()
        fingerprint += f"-p{prefix}"
    return fingerprint
