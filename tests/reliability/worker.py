"""A child process that indexes shards of a repository, announcing each phase on stdout.

Kill tests read the announcements ("chunk", "embed", "write") to aim a SIGKILL at a phase.
Usage: python -m tests.reliability.worker DB ROOT REPO SHARDS FIRST_SHARD [LAST_SHARD] [DELAY]
"""

from __future__ import annotations

import sys

from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.storage import tables as storage
from tests.reliability.fakes import HashEmbedder


def _announce(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def _announced(name: str, write):
    def wrapper(*args, **kwargs):
        _announce("write")
        return write(*args, **kwargs)

    wrapper.__name__ = name
    return wrapper


def main(argv: list[str]) -> int:
    db_uri, root, repo, shards, first = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    last = int(argv[5]) if len(argv) > 5 else shards - 1
    delay = float(argv[6]) if len(argv) > 6 else 0.0
    storage.replace_rows = _announced("replace_rows", storage.replace_rows)
    storage.append_rows = _announced("append_rows", storage.append_rows)
    settings = IndexSettings(shards=shards, use_git=False)
    embedder = HashEmbedder(delay=delay)
    _announce("ready")
    for shard in range(first, last + 1):
        _announce("chunk")
        chunk_partition(db_uri, repo, root, shard, settings)
        _announce("embed")
        embed_partition(db_uri, repo, shard, embedder)
    _announce("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
