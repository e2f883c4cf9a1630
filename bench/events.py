"""Timing of one index run read back from the Dagster event log: lanes, overlap, pids."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import dagster as dg

CHUNK_OP = "chunk_shard"
EMBED_OP = "embed_as_chunks_land"


@dataclass
class Bar:
    lane: str  # a chunk step key, or "embedding"
    label: str  # the partition
    start: float  # seconds since the run started (step process launched, where known)
    end: float
    ready: float | None = None  # STEP_START: the process has imported everything


@dataclass
class Timeline:
    run_start: float  # unix time of RUN_START
    run_end: float
    chunk_steps: list[Bar]
    embedded: list[Bar]  # one per embedded partition, in the embedding worker
    embed_step: Bar | None
    step_pids: dict[int, str]

    def to_dict(self) -> dict[str, object]:
        return {
            "run_seconds": round(self.run_end - self.run_start, 3),
            "chunk_steps": [asdict(b) for b in self.chunk_steps],
            "embedded": [asdict(b) for b in self.embedded],
            "embed_step": asdict(self.embed_step) if self.embed_step else None,
        }


def read_timeline(instance: dg.DagsterInstance, run_id: str) -> Timeline:
    logs = instance.all_logs(run_id)
    run_start = min(e.timestamp for e in logs)
    run_end = max(e.timestamp for e in logs)
    starts: dict[str, float] = {}
    launched: dict[str, float] = {}
    ends: dict[str, float] = {}
    pids: dict[int, str] = {}
    embedded: list[Bar] = []
    chunk_partition: dict[str, str] = {}
    for entry in logs:
        event = entry.dagster_event
        if event is None:
            if entry.message and "Started process for run" in entry.message:
                run_start = min(run_start, entry.timestamp)
            continue
        t = entry.timestamp - run_start
        kind = event.event_type
        step = event.step_key or ""
        if kind in (
            dg.DagsterEventType.STEP_WORKER_STARTING,
            dg.DagsterEventType.STEP_WORKER_STARTED,
        ):
            launched.setdefault(step, t)
        elif kind == dg.DagsterEventType.STEP_START:
            starts[step] = t
            if event.pid:
                pids[event.pid] = step
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            ends[step] = t
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            name = mat.asset_key.to_user_string()
            if name == "vectors":
                seconds = float(mat.metadata["seconds"].value) if "seconds" in mat.metadata else 0.0
                embedded.append(Bar("embedding", str(mat.partition), max(0.0, t - seconds), t))
            elif name == "chunks":
                chunk_partition[step] = str(mat.partition)
    chunk_steps = [
        Bar(
            step,
            chunk_partition.get(step, step),
            launched.get(step, starts[step]),
            ends.get(step, starts[step]),
            ready=starts[step],
        )
        for step in sorted(starts, key=lambda s: starts[s])
        if CHUNK_OP in step
    ]
    embed_steps = [s for s in starts if EMBED_OP in s]
    embed_step = None
    if embed_steps:
        key = embed_steps[0]
        embed_step = Bar(
            key,
            "embed step",
            launched.get(key, starts[key]),
            ends.get(key, run_end - run_start),
            ready=starts[key],
        )
    return Timeline(
        run_start, run_end, chunk_steps, sorted(embedded, key=lambda b: b.start), embed_step, pids
    )


def busy_spans(bars: list[Bar]) -> list[tuple[float, float]]:
    """The union of the bars' spans, as disjoint (start, end) pairs in order. The embedding
    worker pipelines partitions (one read, one encoded, one written at once), so their own
    spans overlap: summed, they counted the same seconds up to three times."""
    merged: list[tuple[float, float]] = []
    for bar in sorted(bars, key=lambda b: b.start):
        if merged and bar.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], bar.end))
        else:
            merged.append((bar.start, bar.end))
    return merged


def overlap(timeline: Timeline) -> dict[str, object]:
    """How much of the embedding ran while chunking was still going on."""
    if not timeline.chunk_steps:
        return {}
    chunk_first = min(b.start for b in timeline.chunk_steps)
    chunk_last = max(b.end for b in timeline.chunk_steps)
    spans = busy_spans(timeline.embedded)
    embed_total = sum(end - start for start, end in spans)
    during = sum(max(0.0, min(end, chunk_last) - max(start, chunk_first)) for start, end in spans)
    first_vectors = min((b.end for b in timeline.embedded), default=None)
    out: dict[str, object] = {
        "chunking_span_s": round(chunk_last - chunk_first, 3),
        "embedding_busy_s": round(embed_total, 3),
        "embedding_during_chunking_s": round(during, 3),
        "share_of_embedding_during_chunking": round(during / embed_total, 3)
        if embed_total
        else None,
        "first_vectors_before_last_chunks_s": round(chunk_last - first_vectors, 3)
        if first_vectors is not None
        else None,
        "chunk_steps": len(timeline.chunk_steps),
        "partitions_embedded": len(timeline.embedded),
        "first_chunk_step_start_s": round(chunk_first, 3),
        "last_chunk_step_end_s": round(chunk_last, 3),
    }
    if timeline.embed_step:
        step = timeline.embed_step
        first_embed = min((b.start for b in timeline.embedded), default=step.end)
        out["embed_step_start_s"] = round(step.start, 3)
        out["embed_step_end_s"] = round(step.end, 3)
        out["embed_step_ready_after_s"] = round(
            first_embed - step.start, 3
        )  # process start + model load + wait
        # Idle: the embedding worker's life minus the time any partition was in its hands.
        out["embedding_worker_idle_s"] = round((step.end - step.start) - embed_total, 3)
    return out
