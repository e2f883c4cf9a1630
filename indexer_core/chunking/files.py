"""One file's chunks: read, decode, split, and give each span its header, hashes and ids."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from indexer_core.chunking import chunk_text
from indexer_core.chunking.header import embed_text, fitted_header, name_words
from indexer_core.chunking.tokens import TokenCounter
from indexer_core.collector import collector_paused
from indexer_core.discovery import skip_reasons
from indexer_core.discovery.decoding import DecodedText, decode_source
from indexer_core.discovery.hashing import blob_id, stable_id, text_hash
from indexer_core.discovery.languages import language_for_path
from indexer_core.discovery.listing import read_file_bytes
from indexer_core.records import Chunk, SkippedFile, Span
from indexer_core.search.names import search_text
from indexer_core.storage import tables as storage


def file_id(repo: str, path: str) -> str:
    return stable_id(repo, path)


@dataclass
class FileChunks:
    """The chunks of one file, with the hash of the bytes they came from."""

    chunks: list[Chunk]
    file_hash: str
    language: str
    notes: list[str]


def chunk_file(
    root: str, repo: str, path: str, shard: int, counter: TokenCounter
) -> FileChunks | SkippedFile:
    """Read, decode and chunk one file; a file that cannot be read gets a skip reason."""
    try:
        data = read_file_bytes(root, path)
    except FileNotFoundError:
        return SkippedFile(path, skip_reasons.VANISHED, "deleted before it could be read")
    except IsADirectoryError:
        return SkippedFile(path, skip_reasons.NOT_REGULAR, "became a directory")
    except OSError as exc:
        return SkippedFile(path, skip_reasons.UNREADABLE, exc.strerror or str(exc))
    decoded = decode_source(data)
    if not isinstance(decoded, DecodedText):
        return SkippedFile(path, decoded.reason, decoded.detail)
    language = language_for_path(path) or "text"
    file_hash = blob_id(data)
    with collector_paused():
        spans = chunk_text(decoded.text, path, language, counter)
        chunks = _chunks_of(spans, repo, path, shard, language, file_hash, counter)
    return FileChunks(chunks=chunks, file_hash=file_hash, language=language, notes=decoded.notes)


def _chunks_of(
    spans: list[Span],
    repo: str,
    path: str,
    shard: int,
    language: str,
    file_hash: str,
    counter: TokenCounter,
) -> list[Chunk]:
    """Rows for one file's spans: context header, hashes, ids and parent links."""
    fid = file_id(repo, path)
    headers: dict[tuple, str] = {}  # chunks of one scope and name share their header
    chunks: list[Chunk] = []
    for index, span in enumerate(spans):
        words = name_words(span.kind, span.name)
        header = headers.get((span.scope, words))
        if header is None:
            header = headers[span.scope, words] = fitted_header(
                path, language, span.scope, counter, words
            )
        text = counter.document_prefix + embed_text(header, span.content)
        content_hash = text_hash(text)
        chunks.append(
            Chunk(
                chunk_id=stable_id(repo, path, index, span.start_line, span.end_line, content_hash),
                repo=repo,
                path=path,
                file_id=fid,
                shard=shard,
                language=language,
                kind=span.kind,
                name=span.name,
                scope=" > ".join(span.scope),
                parent_id="",
                start_line=span.start_line,
                end_line=span.end_line,
                content=span.content,
                file_hash=file_hash,
                content_hash=content_hash,
                part=span.part,
                parts=span.parts,
                embed_text=text,
                search_text=search_text(path, " > ".join(span.scope), span.name, span.content),
            )
        )
    for chunk, span in zip(chunks, spans):
        if span.parent is not None:
            chunk.parent_id = chunks[span.parent].chunk_id
    return chunks


def chunks_to_arrow(chunks: list[Chunk]) -> pa.Table:
    columns = {name: [getattr(c, name) for c in chunks] for name in storage.CHUNKS_SCHEMA.names}
    return pa.table(columns, schema=storage.CHUNKS_SCHEMA)
