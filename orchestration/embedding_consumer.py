"""The embedding consumer: one long-lived step that embeds each partition of its run the
moment that partition's chunks land.

Why it departs from plain assets. With `vectors` as an ordinary partitioned asset, every
partition (or every run of a backfill) would start a process, import torch and load the
model, seconds of fixed cost per partition, and Dagster would only start embedding once
chunking of that partition's step had ended. Here one step per run (per GPU) starts with
the run, loads the model while the partitions are still being planned and chunked, then
takes partitions in the order they land. It learns what landed from the run's own event
log: the `chunks` materialization every chunk step records, and the failure of a chunk
step. Each partition's `vectors` materialization is recorded the moment its write commits,
so the UI shows one per partition and a failure loses nothing done before it.

Nothing here depends on process ids or on which host a step runs: partitions are named by
the events themselves, and a failed chunk step's partitions come from its mapping key
(`partitions.group_of_mapping_key`), so it works where steps share a worker process
(Celery) or run in pods (Kubernetes).

Interface:
- `ChunkLandings`: which of a run's planned partitions have landed or failed, by event log;
- `EmbeddingConsumer`: loads the model at construction, `run(landings)` embeds as they
  land and records each; `close()` waits for (or drops) queued writes.

Several consumers (one per GPU, on one host or many) share one run's partitions through
`claim`: a partition lock taken without waiting (`locking.try_partition_lock`, a Postgres
advisory lock across hosts). A consumer claims at most `ahead` partitions at a time (one by
default: a claim held ahead of a long partition idles the other consumers; measured with
bench.cluster), so the others get theirs; it keeps the claim until the
partition's `vectors` materialization is recorded, and a consumer that wins a claim first
checks the run's event log, so each partition is embedded and recorded once, whichever
consumer takes it. A consumer that dies releases its claims with its connection (or file
descriptor): another consumer, or the rerun, takes those partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.execution.plan.handle import ResolvedFromDynamicStepHandle, StepHandle

from indexer_core.indexing.embed_step import EmbedReport
from indexer_core.indexing.embed_worker import EmbeddingWorker
from indexer_core.storage.locking import HeldLock, try_partition_lock
from orchestration.partitions import group_of_mapping_key, split_partition_key

POLL_SECONDS = 0.25
_STEP_ENDS = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED}


@dataclass
class Landed:
    """What one poll of the event log found."""

    landed: list[str] = field(default_factory=list)  # partitions whose chunks are written
    embedded: list[str] = field(default_factory=list)  # partitions with `vectors` recorded
    failed: list[str] = field(default_factory=list)  # partitions whose chunk step failed
    aborted: str = ""  # why nothing more will land (the planning step failed), or ""


class ChunkLandings:
    """A run's planned partitions, followed through the run's event log.

    `chunk_op` and `plan_op` name the ops (not step keys) of the chunk steps and the
    planning step. Partitions that `already_chunked` (a re-execution whose parent run
    chunked them) count as landed from the start.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        partitions: Iterable[str],
        chunk_op: str,
        plan_op: str,
        already_chunked: Iterable[str] = (),
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.chunk_op = chunk_op
        self.plan_op = plan_op
        self.planned = sorted(partitions)
        self.pending = set(partitions)
        self._initial = sorted(self.pending & set(already_chunked))
        self.pending -= set(self._initial)
        self._cursor: str | None = None

    def poll(self) -> Landed:
        """Partitions that landed or failed since the last poll (each reported once)."""
        found = Landed(landed=self._initial)
        self._initial = []
        types = {dg.DagsterEventType.ASSET_MATERIALIZATION, *_STEP_ENDS}
        while True:
            page = self.instance.get_records_for_run(
                run_id=self.run_id, cursor=self._cursor, of_type=types, limit=1000
            )
            for record in page.records:
                self._take(record.event_log_entry.dagster_event, found)
            self._cursor = page.cursor
            if not page.has_more:
                return found

    def poll_recorded(self) -> list[str]:
        """Every partition with a `vectors` materialization in the run so far (a full read of
        those events, not from the cursor, so nothing `poll` has yet to report is taken)."""
        keys = []
        cursor = None
        while True:
            page = self.instance.get_records_for_run(
                run_id=self.run_id,
                cursor=cursor,
                of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
                limit=1000,
            )
            for record in page.records:
                event = record.event_log_entry.dagster_event
                materialization = event.event_specific_data.materialization
                if materialization.asset_key == dg.AssetKey("vectors"):
                    keys.append(materialization.partition)
            cursor = page.cursor
            if not page.has_more:
                return keys

    def _take(self, event, found: Landed) -> None:
        if event is None:
            return
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            key = materialization.partition
            if materialization.asset_key == dg.AssetKey("chunks") and key in self.pending:
                self.pending.discard(key)
                found.landed.append(key)
            elif materialization.asset_key == dg.AssetKey("vectors"):
                found.embedded.append(key)
            return
        handle = event.step_handle
        if handle is None:
            return
        if handle.node_handle.name == self.plan_op:
            found.aborted = f"planning step {event.step_key} did not succeed"
            found.failed.extend(sorted(self.pending))
            self.pending.clear()
        elif handle.node_handle.name == self.chunk_op and isinstance(
            handle, ResolvedFromDynamicStepHandle
        ):
            for key in group_of_mapping_key(handle.mapping_key, self.planned):
                if key in self.pending:  # a step's partitions that landed before it failed stay
                    self.pending.discard(key)
                    found.failed.append(key)


def rerun_chunked_elsewhere(
    run: dg.DagsterRun, partitions: Iterable[str], chunk_op: str
) -> list[str]:
    """In a re-execution, the planned partitions whose chunk steps are not re-executed:
    the parent run chunked them, so they are ready now. Empty for a first execution."""
    if not (run.parent_run_id and run.step_keys_to_execute):
        return []
    planned = sorted(partitions)
    rerun = set()
    for step_key in run.step_keys_to_execute:
        handle = StepHandle.parse_from_key(step_key)
        if (
            isinstance(handle, ResolvedFromDynamicStepHandle)
            and handle.node_handle.name == chunk_op
        ):
            rerun.update(group_of_mapping_key(handle.mapping_key, planned))
    return [key for key in planned if key not in rerun]


@dataclass
class ConsumerOutcome:
    embedded: list[str] = field(default_factory=list)
    failed_chunking: list[str] = field(default_factory=list)
    aborted: str = ""


Claim = Callable[[str], "HeldLock | None"]


def partition_claims(db_uri: str) -> Claim:
    """The claim of a consumer among several: the partition's lock, taken without waiting
    (a Postgres advisory lock where `locking.use_postgres_locks` chose one, else a flock)."""

    def claim(key: str) -> HeldLock | None:
        repo, shard = split_partition_key(key)
        return try_partition_lock(db_uri, repo, shard)

    return claim


class EmbeddingConsumer:
    """Embeds partitions on one loaded model as they land, recording each as it commits.

    `record(partition, report)` is called in landing order, from the calling thread, as
    soon as a partition's vectors are committed. With `claim` (several consumers per run),
    a partition is embedded only under its claim, and at most `ahead` claims are held.
    """

    def __init__(
        self,
        db_uri: str,
        embedder,
        record: Callable[[str, EmbedReport], None],
        poll_seconds: float = POLL_SECONDS,
        claim: Claim | None = None,
        ahead: int = 1,
    ) -> None:
        self.embedder = embedder
        self.record = record
        self.poll_seconds = poll_seconds
        self.claim = claim
        self.ahead = ahead
        self._worker = EmbeddingWorker(db_uri, embedder)
        self._queued: list[tuple[str, Future, HeldLock | None]] = []
        self._ready: list[str] = []  # landed, not yet taken by this consumer
        self._recorded: set[str] = set()  # `vectors` recorded in this run, by any consumer

    def run(self, landings: ChunkLandings) -> ConsumerOutcome:
        """Embed every partition of `landings` as it lands; returns once all have landed
        or failed and every landed one is written (here or, with claims, by another
        consumer). A write that fails raises here."""
        outcome = ConsumerOutcome()
        finished = False
        try:
            while landings.pending or self._queued or self._ready or not finished:
                found = landings.poll()
                self._ready += found.landed
                self._recorded.update(found.embedded)
                outcome.failed_chunking += found.failed
                outcome.aborted = outcome.aborted or found.aborted
                taken = self._take(landings)
                finished = not landings.pending
                self._record_written(outcome, wait=finished and not self._ready)
                if not taken and (landings.pending or self._ready):
                    time.sleep(self.poll_seconds)
            return outcome
        except BaseException:
            self.close(cancel=True)
            raise

    def close(self, cancel: bool = False) -> None:
        self._worker.close(cancel=cancel)
        for _, _, held in self._queued:
            if held is not None:
                held.release()

    def _take(self, landings: ChunkLandings) -> bool:
        """Submit ready partitions: all of them without claims, else those this consumer
        can claim, up to `ahead` in flight. True when any was submitted."""
        self._ready = [key for key in self._ready if key not in self._recorded]
        if self.claim is None:
            for key in self._ready:
                self._queued.append((key, self._worker.submit(*split_partition_key(key)), None))
            taken, self._ready = bool(self._ready), []
            return taken
        taken = False
        for key in list(self._ready):
            if len(self._queued) >= self.ahead:
                break
            held = self.claim(key)
            if held is None:
                continue  # another consumer has it: recorded soon, or free again if it dies
            # Claimed: was it recorded by a consumer that held it before us?
            self._recorded.update(landings.poll_recorded())
            self._ready.remove(key)
            if key in self._recorded:
                held.release()
                continue
            repo, shard = split_partition_key(key)
            self._queued.append((key, self._worker.submit(repo, shard, locked=True), held))
            taken = True
        return taken

    def _record_written(self, outcome: ConsumerOutcome, wait: bool) -> None:
        while self._queued and (wait or self._queued[0][1].done()):
            key, future, held = self._queued.pop(0)
            try:
                self.record(key, future.result())
            finally:
                if held is not None:
                    held.release()  # after the record: a later claimant sees it
            self._recorded.add(key)
            outcome.embedded.append(key)
