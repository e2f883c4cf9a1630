"""Plain data shared by every stage: what discovery found, what chunking produced."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FileEntry:
    """A file chosen for indexing, identified by its repository-relative POSIX path."""

    path: str
    size: int
    mtime_ns: int
    file_hash: str = ""


@dataclass(frozen=True)
class SkippedFile:
    """A file (or pruned directory) left out of the index, with the reason why."""

    path: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Span:
    """One chunk as the chunker sees it: a line range of one file plus its place in the tree.

    `parent` is the index of the enclosing span in the same list (None for top level),
    `scope` the names of the enclosing units from the outside in.
    """

    start_line: int
    end_line: int
    kind: str
    name: str
    content: str
    parent: int | None = None
    scope: tuple[str, ...] = ()
    part: int = 1  # which part of a unit too long for one chunk (1-based) ...
    parts: int = 1  # ... out of how many; 1: the whole unit

    @property
    def label(self) -> str:
        """The name as a person reads it: `read`, or `read (part 2/3)` for a part."""
        return self.name if self.parts == 1 else f"{self.name} (part {self.part}/{self.parts})"


@dataclass
class Chunk:
    """A row of the `chunks` table."""

    chunk_id: str
    repo: str
    path: str
    file_id: str
    shard: int
    language: str
    kind: str
    name: str
    scope: str
    parent_id: str
    start_line: int
    end_line: int
    content: str
    file_hash: str
    content_hash: str
    part: int = 1
    parts: int = 1
    embed_text: str = field(repr=False, default="")
    search_text: str = field(repr=False, default="")
