"""Content hashes that identify a file's bytes, and the size+mtime fast path that avoids them.

Every file hash is a git blob id (SHA-1 of `blob <size>\\0<bytes>`), so a hash taken from
git's index and one computed here agree, and a checkout costs no hashing at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def blob_id(data: bytes) -> str:
    """The git blob id of these bytes."""
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def text_hash(text: str) -> str:
    """A short stable hash of a text (what is embedded, ids); 128 bits of BLAKE2b."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def stable_id(*parts: str | int) -> str:
    """A deterministic id from several fields; a NUL between them keeps fields apart."""
    joined = "\0".join(map(str, parts))
    return hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


@dataclass(frozen=True)
class StatRecord:
    """What the previous run knew about a file: enough to skip re-hashing it."""

    size: int
    mtime_ns: int
    file_hash: str
