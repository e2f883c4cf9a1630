"""Dagster metadata for each partition's records: what a person reads in the UI."""

from __future__ import annotations

import dagster as dg

from indexer_core.indexing.chunk_step import ChunkReport
from indexer_core.indexing.embed_step import EmbedReport
from indexer_core.storage.tables import CHUNKS, VECTORS, table_uri


def skipped_table(report: ChunkReport) -> dg.TableMetadataValue:
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("path", "string"),
            dg.TableColumn("reason", "string"),
            dg.TableColumn("detail", "string"),
        ]
    )
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"path": s.path, "reason": s.reason, "detail": s.detail})
            for s in report.skipped[:500]
        ],
        schema=schema,
    )


def chunk_metadata(report: ChunkReport, db_uri: str) -> dict[str, dg.RawMetadataValue]:
    reasons: dict[str, int] = {}
    for skip in report.skipped:
        reasons[skip.reason] = reasons.get(skip.reason, 0) + 1
    seconds = max(report.seconds, 1e-9)
    return {
        "dagster/uri": table_uri(db_uri, CHUNKS),
        "dagster/partition_row_count": report.chunks_total,
        "files": report.files,
        "files_unchanged": report.unchanged,
        "files_added": report.added,
        "files_modified": report.modified,
        "files_deleted": report.deleted,
        "files_renamed": report.renamed,
        "files_parsed": report.parsed,
        "bytes_parsed": report.bytes_parsed,
        "chunks_added": report.chunks_added,
        "chunks_removed": report.chunks_removed,
        "skipped_files": len(report.skipped),
        "skipped_by_reason": dg.MetadataValue.json(reasons),
        "skipped": skipped_table(report),
        "decoding_notes": dg.MetadataValue.json(dict(list(report.notes.items())[:200])),
        "data_version": report.data_version,
        "seconds": round(report.seconds, 3),
        "mb_per_second": round(report.bytes_parsed / 1e6 / seconds, 3),
    }


def embed_metadata(report: EmbedReport, db_uri: str) -> dict[str, dg.RawMetadataValue]:
    return {
        "dagster/uri": table_uri(db_uri, VECTORS),
        "dagster/partition_row_count": report.chunks,
        "chunks": report.chunks,
        "embeddings_computed": report.embedded,
        "embeddings_reused": report.reused,
        "vectors_unchanged": report.unchanged,
        "vectors_removed": report.removed,
        "model": report.model,
        "device": report.device,
        "seconds": round(report.seconds, 3),
        "embed_seconds": round(report.embed_seconds, 3),
        "read_seconds": round(report.read_seconds, 3),
        "write_seconds": round(report.write_seconds, 3),
        "encoder_wait_seconds": round(report.encoder_wait_seconds, 3),
        "chunks_per_second": round(report.embedded / report.embed_seconds, 1)
        if report.embed_seconds
        else 0.0,
    }


_REPORT_FIELDS = {  # embed_metadata's key -> EmbedReport's field, for reading a record back
    "chunks": "chunks",
    "embeddings_computed": "embedded",
    "embeddings_reused": "reused",
    "vectors_unchanged": "unchanged",
    "vectors_removed": "removed",
    "model": "model",
    "device": "device",
    "seconds": "seconds",
    "embed_seconds": "embed_seconds",
    "read_seconds": "read_seconds",
    "write_seconds": "write_seconds",
    "encoder_wait_seconds": "encoder_wait_seconds",
}


def slice_metadata(
    report: EmbedReport, db_uri: str, index: int, count: int
) -> dict[str, dg.RawMetadataValue]:
    """A slice's observation: its own numbers (not the partition's row count), and which
    slice of how many, so any consumer can tell when a partition's slices are all written."""
    metadata = embed_metadata(report, db_uri)
    del metadata["dagster/partition_row_count"]
    return {**metadata, "slice": index, "slices": count}


def report_from_metadata(repo: str, shard: int, metadata: dict) -> EmbedReport:
    """The EmbedReport a consumer recorded as `embed_metadata` (or `slice_metadata`)."""
    report = EmbedReport(repo=repo, shard=shard)
    for key, name in _REPORT_FIELDS.items():
        if key in metadata:
            value = metadata[key]
            setattr(report, name, getattr(value, "value", value))
    return report


def encoder_padding(embedder) -> dict[str, int | float]:
    """What the encoder's batches ran against the texts' own tokens (an encoder that pads
    to each batch's longest text and counts it; empty for any other)."""
    tokens, padded = getattr(embedder, "tokens", None), getattr(embedder, "padded_tokens", None)
    if not isinstance(tokens, int) or not isinstance(padded, int):
        return {}
    padding = round(padded / tokens - 1.0, 4) if tokens else 0.0
    return {"encoder_tokens": tokens, "encoder_padded_tokens": padded, "encoder_padding": padding}
