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
