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
claims: a lock taken without waiting (`locking.try_partition_lock`, a Postgres advisory lock
across hosts). The unit of claim is a partition, or a slice of one: a partition of at least
`consumers x MIN_SLICE_CHUNKS` chunks is split into one slice per consumer (`slice_count`),
so a few large partitions no longer leave all but one consumer idle at the end of a run.
Ready units are claimed largest first (sizes from each `chunks` materialization's row
count), so what remains at the end is small. A consumer claims at most `ahead` units at a
time (one by default), so the others get theirs; it keeps the claim until the unit is
recorded, and a consumer that wins a claim first asks the event log whether an earlier
holder wrote it, so each unit is embedded once, whichever consumer takes it.

A slice is written in one commit and recorded as a `vectors` observation naming it; the
partition's `vectors` materialization is recorded once, when all its slices are written, by
a consumer that sees the last one land and holds the partition's lock. A consumer that dies
releases its claims with its connection (or file descriptor): another consumer, or the
rerun, takes those units, and a slice is either written whole or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.event_api import EventLogCursor
from dagster._core.execution.plan.handle import ResolvedFromDynamicStepHandle, StepHandle

from indexer_core.indexing.embed_step import EmbedReport, Part, merge_reports
from indexer_core.indexing.embed_worker import EmbeddingWorker
from indexer_core.storage.locking import HeldLock, try_partition_lock
from orchestration.metadata import report_from_metadata
from orchestration.partitions import group_of_mapping_key, split_partition_key

POLL_SECONDS = 0.25
# With nothing to encode and no claims to contend for, the encoder is idle until the next
# partition lands: a landing then waits 25 ms for the consumer on average, not 125 (the
# first partition's always does). A poll is one read of the run's new events.
IDLE_POLL_SECONDS = 0.05
# How long after its read an event's storage id is taken as settled: every event below it
# committed (a writer's insert commits in milliseconds; see `ChunkLandings.poll`).
SETTLE_SECONDS = 2.0
# A slice holds at least this many chunks: below it, a slice's own commit and records would
# cost a fast device more than the idle time that slicing saves.
MIN_SLICE_CHUNKS = 32
ROW_COUNT = "dagster/partition_row_count"
VECTORS = dg.AssetKey("vectors")
_STEP_ENDS = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED}
_ASSET_EVENTS = {
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_OBSERVATION,
}


def slice_count(chunks: int, consumers: int) -> int:
    """The slices a partition of `chunks` chunks is embedded in, when `consumers` share a
    run: one per consumer once each would hold MIN_SLICE_CHUNKS, else the whole partition.
    Only 1 or `consumers`, so two runs of one partition slice it alike (each slice's lock
    excludes the other run's) or one takes it whole (its exclusive lock excludes slices)."""
    if consumers > 1 and chunks >= consumers * MIN_SLICE_CHUNKS:
        return consumers
    return 1


@dataclass(frozen=True)
class SliceDone:
    """A slice's `vectors` observation: slice `index` of `count` of partition `key`."""

    key: str
    index: int
    count: int
    report: EmbedReport


@dataclass
class Landed:
    """What one poll of the event log found."""

    landed: list[str] = field(default_factory=list)  # partitions whose chunks are written
    embedded: list[str] = field(default_factory=list)  # partitions with `vectors` recorded
    failed: list[str] = field(default_factory=list)  # partitions whose chunk step failed
    # why the planned groups will not land (the planning step failed), or ""; the first
    # chunk step's partitions still do
    aborted: str = ""
    sizes: dict[str, int] = field(default_factory=dict)  # chunks of landed ones, where recorded
    slices: list[SliceDone] = field(default_factory=list)  # slices written, by any consumer


def settle_seconds(instance: dg.DagsterInstance) -> float:
    """How long an event read from `instance`'s event log is read again (`ChunkLandings.poll`):
    not at all where the storage is SQLite, whose writers take turns, so an id is visible
    only after every lower one committed; SETTLE_SECONDS elsewhere (Postgres). A run's log
    is polled four times a second (twenty while a lone consumer waits for work), and each
    record read again is deserialized again."""
    try:
        from dagster._core.storage.event_log.sqlite import (
            ConsolidatedSqliteEventLogStorage,
            SqliteEventLogStorage,
        )
    except ImportError:  # internals moved: read as on any other storage
        return SETTLE_SECONDS
    sqlite = (SqliteEventLogStorage, ConsolidatedSqliteEventLogStorage)
    return 0.0 if isinstance(instance.event_log_storage, sqlite) else SETTLE_SECONDS


class ChunkLandings:
    """A run's planned partitions, followed through the run's event log.

    `chunk_op` and `plan_op` name the ops (not step keys) of the chunk steps the planning
    step fans out and of the planning step; `first` the op of the chunk step that starts
    with the run, and its partitions (the planning step's failure leaves it going).
    Partitions that `already_chunked` (a re-execution whose parent run chunked them) count
    as landed from the start.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        partitions: Iterable[str],
        chunk_op: str,
        plan_op: str,
        first: tuple[str, Iterable[str]] = ("", ()),
        already_chunked: Iterable[str] = (),
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.chunk_op = chunk_op
        self.plan_op = plan_op
        self.first_op, self.first_group = first[0], set(first[1])
        self.planned = sorted(partitions)
        self.pending = set(partitions)
        self._initial = sorted(self.pending & set(already_chunked))
        self.pending -= set(self._initial)
        self._settle_seconds = settle_seconds(instance)
        self._settled_id: int | None = None  # every event up to here has been read
        self._recent: dict[int, float] = {}  # storage ids read above it, and when
        self._first_id: int | None = None  # storage id before the run's first event

    def poll(self, now: Callable[[], float] = time.monotonic) -> Landed:
        """Partitions that landed or failed since the last poll (each reported once).

        On Postgres, storage ids are taken when an event is written and become visible when
        its writer commits, so with several steps writing at once an event can appear below
        one already read. A cursor at the highest id read would skip it for good, and the
        consumer would wait forever for that partition. Events read in the last
        SETTLE_SECONDS are read again on every poll (each taken once), so the cursor only
        passes ids that were read that long ago: a commit is never that late. SQLite has
        one writer at a time, so there ids become visible in order and the cursor passes
        each event as soon as it is read (`settle_seconds`)."""
        found = Landed(landed=self._initial)
        self._initial = []
        types = {*_ASSET_EVENTS, *_STEP_ENDS}
        read_at = now()
        cursor = (
            None
            if self._settled_id is None
            else EventLogCursor.from_storage_id(self._settled_id).to_string()
        )
        while True:
            page = self.instance.get_records_for_run(
                run_id=self.run_id, cursor=cursor, of_type=types, limit=1000
            )
            for record in page.records:
                if record.storage_id not in self._recent:
                    self._recent[record.storage_id] = read_at
                    self._take(record.event_log_entry.dagster_event, found)
            cursor = page.cursor
            if not page.has_more:
                break
        settled = [i for i, at in self._recent.items() if read_at - at >= self._settle_seconds]
        if settled:
            self._settled_id = max(settled)
            self._recent = {i: at for i, at in self._recent.items() if i > self._settled_id}
        return found

    def recorded(self, key: str) -> bool:
        """Whether this run recorded `key`'s `vectors`: a claimant's check that no earlier
        holder did. Reads that partition's records since the run began, not the run's log."""
        return bool(self._since_run_began(key, self.instance.fetch_materializations))

    def slices_written(self, key: str) -> list[SliceDone]:
        """The slices of `key` this run has written (their observations, read now)."""
        records = self._since_run_began(key, self.instance.fetch_observations)
        return [
            _slice_done(key, record.asset_observation.metadata)
            for record in records
            if "slice" in record.asset_observation.metadata
        ]

    def _since_run_began(self, key: str, fetch) -> list:
        if self._first_id is None:
            first = self.instance.get_records_for_run(run_id=self.run_id, limit=1).records
            self._first_id = first[0].storage_id - 1 if first else 0
        wanted = dg.AssetRecordsFilter(
            asset_key=VECTORS, asset_partitions=[key], after_storage_id=self._first_id
        )
        found, cursor = [], None
        while True:
            page = fetch(wanted, limit=100, cursor=cursor)
            found += [record for record in page.records if record.run_id == self.run_id]
            cursor = page.cursor
            if not page.has_more:
                return found

    def _take(self, event, found: Landed) -> None:
        if event is None:
            return
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            key = materialization.partition
            if materialization.asset_key == dg.AssetKey("chunks") and key in self.pending:
                self.pending.discard(key)
                found.landed.append(key)
                size = materialization.metadata.get(ROW_COUNT)
                if size is not None:
                    found.sizes[key] = int(size.value)
            elif materialization.asset_key == VECTORS:
                found.embedded.append(key)
            return
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
            observation = event.event_specific_data.asset_observation
            if observation.asset_key == VECTORS and "slice" in observation.metadata:
                found.slices.append(_slice_done(observation.partition, observation.metadata))
            return
        handle = event.step_handle
        if handle is None:
            return
        if handle.node_handle.name == self.plan_op:
            found.aborted = f"planning step {event.step_key} did not succeed"
            self._fail(self.pending - self.first_group, found)
        elif handle.node_handle.name == self.first_op and self.first_op:
            self._fail(self.first_group, found)
        elif handle.node_handle.name == self.chunk_op and isinstance(
            handle, ResolvedFromDynamicStepHandle
        ):
            self._fail(group_of_mapping_key(handle.mapping_key, self.planned), found)

    def _fail(self, keys: Iterable[str], found: Landed) -> None:
        """A failed step's partitions that had not landed (those that did stay landed)."""
        for key in sorted(keys):
            if key in self.pending:
                self.pending.discard(key)
                found.failed.append(key)


def _slice_done(key: str, metadata: dict) -> SliceDone:
    repo, shard = split_partition_key(key)
    return SliceDone(
        key,
        int(metadata["slice"].value),
        int(metadata["slices"].value),
        report_from_metadata(repo, shard, metadata),
    )


def rerun_chunked_elsewhere(
    run: dg.DagsterRun,
    partitions: Iterable[str],
    chunk_op: str,
    first: tuple[str, Iterable[str]] = ("", ()),
) -> list[str]:
    """In a re-execution, the planned partitions whose chunk steps are not re-executed:
    the parent run chunked them, so they are ready now. Empty for a first execution.
    `chunk_op` and `first` as for `ChunkLandings`."""
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
        elif first[0] and handle.node_handle.name == first[0]:
            rerun.update(first[1])
    return [key for key in planned if key not in rerun]


@dataclass
class ConsumerOutcome:
    embedded: list[str] = field(default_factory=list)
    failed_chunking: list[str] = field(default_factory=list)
    aborted: str = ""


class PartitionClaims:
    """The claims of a consumer among several, taken without waiting (Postgres advisory locks
    where `locking.use_postgres_locks` chose them, else flocks): a whole partition under its
    lock; a slice under its own lock plus the partition's lock shared with other slices."""

    def __init__(self, db_uri: str) -> None:
        self.db_uri = db_uri

    def __call__(self, key: str) -> HeldLock | None:
        repo, shard = split_partition_key(key)
        return try_partition_lock(self.db_uri, repo, shard)

    def slice(self, key: str, index: int) -> HeldLock | None:
        repo, shard = split_partition_key(key)
        own = try_partition_lock(self.db_uri, repo, shard, part=index)
        if own is None:
            return None
        shared = try_partition_lock(self.db_uri, repo, shard, shared=True)
        if shared is None:  # a writer of the whole partition holds it
            own.release()
            return None
        return HeldLock(lambda: (shared.release(), own.release()))


def partition_claims(db_uri: str) -> PartitionClaims:
    return PartitionClaims(db_uri)


@dataclass(frozen=True)
class Unit:
    """What a consumer claims and embeds: a partition, or slice `part` (index, count) of one."""

    key: str
    part: Part | None = None
    size: int = 0  # chunks, for the largest-first order
    empty: bool = False  # its chunk step recorded no chunks in it


class EmbeddingConsumer:
    """Embeds partitions on one loaded model as they land, recording each as it commits.

    `record(partition, report)` is called from the calling thread as soon as a partition's
    vectors are committed (in landing order with one consumer). With `claim` (`consumers`
    share the run), a unit is embedded only under its claim, at most `ahead` claims are
    held, the largest ready unit is claimed first, and `observe(partition, index, count,
    report)` records each slice as it commits.
    """

    def __init__(
        self,
        db_uri: str,
        embedder,
        record: Callable[[str, EmbedReport], None],
        poll_seconds: float = POLL_SECONDS,
        claim: PartitionClaims | None = None,
        ahead: int = 1,
        consumers: int = 1,
        observe: Callable[[str, int, int, EmbedReport], None] | None = None,
    ) -> None:
        self.embedder = embedder
        self.record = record
        self.observe = observe
        self.poll_seconds = poll_seconds
        self.claim = claim
        self.ahead = ahead
        self.consumers = consumers if claim is not None else 1
        self._worker = EmbeddingWorker(db_uri, embedder)
        self._queued: list[tuple[Unit, Future, HeldLock | None]] = []
        self._ready: list[Unit] = []  # landed, not yet taken by this consumer
        self._recorded: set[str] = set()  # `vectors` recorded in this run, by any consumer
        self._slices: dict[str, dict[int, EmbedReport]] = {}  # slices written, by any consumer
        self._complete: set[str] = set()  # every slice written, partition not yet recorded

    def run(self, landings: ChunkLandings) -> ConsumerOutcome:
        """Embed every partition of `landings` as it lands; returns once all have landed
        or failed and every landed one is written and recorded (here or, with claims, by
        another consumer). A write that fails raises here."""
        outcome = ConsumerOutcome()
        finished = False
        try:
            while landings.pending or self._queued or self._ready or self._complete or not finished:
                found = landings.poll()
                self._land(found)
                self._recorded.update(found.embedded)
                for done in found.slices:
                    self._slice_written(done)
                outcome.failed_chunking += found.failed
                outcome.aborted = outcome.aborted or found.aborted
                taken = self._take(landings)
                finished = not landings.pending
                self._record_written(outcome, wait=finished and not self._ready)
                self._record_complete(outcome, landings)
                if not taken and (landings.pending or self._ready or self._complete):
                    self._pause()
            return outcome
        except BaseException:
            self.close(cancel=True)
            raise

    def close(self, cancel: bool = False) -> None:
        self._worker.close(cancel=cancel)
        for _, _, held in self._queued:
            if held is not None:
                held.release()

    def _land(self, found: Landed) -> None:
        for key in found.landed:
            size = found.sizes.get(key)
            count = slice_count(size or 0, self.consumers)
            if count == 1:
                self._ready.append(Unit(key, None, size or 0, empty=size == 0))
            else:
                self._ready += [Unit(key, (i, count), size // count) for i in range(count)]

    def _done(self, unit: Unit) -> bool:
        if unit.key in self._recorded:
            return True
        return unit.part is not None and unit.part[0] in self._slices.get(unit.key, {})

    def _take(self, landings: ChunkLandings) -> bool:
        """Submit ready units: all of them without claims, else those this consumer can
        claim, largest first, up to `ahead` in flight. True when any was submitted."""
        self._ready = [unit for unit in self._ready if not self._done(unit)]
        if self.claim is None:
            self._settle_empty()
            for unit in self._ready:
                future = self._worker.submit(*split_partition_key(unit.key))
                self._queued.append((unit, future, None))
            taken, self._ready = bool(self._ready), []
            return taken
        # Largest first (stable: equal sizes keep landing order), so the units left when
        # the consumers run out of work are small and they finish together.
        self._ready.sort(key=lambda unit: -unit.size)
        taken = False
        for unit in list(self._ready):
            if len(self._queued) >= self.ahead:
                break
            if unit.part is None:
                held = self.claim(unit.key)
            else:
                held = self.claim.slice(unit.key, unit.part[0])
            if held is None:
                continue  # another consumer has it: recorded soon, or free again if it dies
            self._ready.remove(unit)
            if self._written_before(unit, landings):
                held.release()
                continue
            repo, shard = split_partition_key(unit.key)
            future = self._worker.submit(repo, shard, locked=True, part=unit.part)
            self._queued.append((unit, future, held))
            taken = True
        return taken

    def _settle_empty(self) -> None:
        """Queue, already done, the ready partitions that hold neither chunks nor vectors
        (one read for all of them); the rest stay ready for the worker."""
        empty: dict[str, dict[int, Unit]] = {}
        for unit in self._ready:
            if unit.empty:
                repo, shard = split_partition_key(unit.key)
                empty.setdefault(repo, {})[shard] = unit
        for repo, units in empty.items():
            reports = self._worker.settle_empty(repo, sorted(units))
            for shard, unit in units.items():
                report = reports.get(shard)
                if report is None:
                    continue  # it holds vectors to remove: the worker's
                settled: Future = Future()
                settled.set_result(report)
                self._queued.append((unit, settled, None))
                self._ready.remove(unit)

    def _written_before(self, unit: Unit, landings: ChunkLandings) -> bool:
        """Claimed: did a consumer that held the claim before this one write it?"""
        if unit.part is None:
            if landings.recorded(unit.key):
                self._recorded.add(unit.key)
        else:
            for done in landings.slices_written(unit.key):
                self._slice_written(done)
        return self._done(unit)

    def _record_written(self, outcome: ConsumerOutcome, wait: bool) -> None:
        while self._queued and (wait or self._queued[0][1].done()):
            unit, future, held = self._queued.pop(0)
            try:
                report = future.result()
                if unit.part is None:
                    self.record(unit.key, report)
                else:
                    self.observe(unit.key, *unit.part, report)
            finally:
                if held is not None:
                    held.release()  # after the record: a later claimant sees it
            if unit.part is None:
                self._recorded.add(unit.key)
                outcome.embedded.append(unit.key)
            else:
                self._slice_written(SliceDone(unit.key, *unit.part, report))

    def _slice_written(self, done: SliceDone) -> None:
        written = self._slices.setdefault(done.key, {})
        written[done.index] = done.report
        if len(written) == done.count and done.key not in self._recorded:
            self._complete.add(done.key)

    def _record_complete(self, outcome: ConsumerOutcome, landings: ChunkLandings) -> None:
        """Record each partition whose slices are all written, once: under the partition's
        lock, unless the run already has its record (another consumer saw the last slice
        too). A lock held elsewhere is tried again on the next round."""
        for key in sorted(self._complete - self._recorded):
            held = self.claim(key)
            if held is None:
                continue
            try:
                if not landings.recorded(key):
                    self.record(key, merge_reports(list(self._slices[key].values())))
                    outcome.embedded.append(key)
            finally:
                held.release()
            self._recorded.add(key)
        self._complete -= self._recorded

    def _pause(self) -> None:
        """Wait for the next poll, or less when this consumer's oldest unit is written, or
        when it has nothing queued and no claims to contend for (`IDLE_POLL_SECONDS`)."""
        if self._queued:
            wait([self._queued[0][1]], timeout=self.poll_seconds)
        elif self.claim is None:
            time.sleep(min(self.poll_seconds, IDLE_POLL_SECONDS))
        else:
            time.sleep(self.poll_seconds)
