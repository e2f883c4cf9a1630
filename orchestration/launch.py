"""What a run needs from this machine before it starts: a Dagster home, and a warm server
to fork step processes from.

No Dagster import at this module's top, so the CLI decides cheaply whether a run needs the
server at all. When it does, the CLI imports what it shares with the server, then forks the
server, which imports the rest (LanceDB) while the CLI opens the instance and creates the run.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from indexer_core.collector import collector_paused
from indexer_core.deferred_models import deferred_model_builds
from orchestration import config

if TYPE_CHECKING:
    from indexer_core.indexing.staleness import ChangeSet

# What the multiprocess executor preloads into its forkserver (`jobs.start_method` adds
# `step_preload`); a server started here with the same list is the one the executor uses.
_EXECUTOR_PRELOAD = "dagster._core.executor.multiprocess"
# What the process that drives a run and the step server both import: the code location, the
# runner, the SQLite instance storages, and what opening an instance imports on first use
# (its storage root, the state storage's path library and fsspec: ~0.1-0.2 s of CPU that
# every step process paid again before it started); ~2.5 s of CPU here. The CLI imports them
# before it forks the server, so they are imported once (`prewarm_step_server`).
SHARED_WITH_STEPS = (
    "orchestration.definitions",
    "orchestration.runner",
    "dagster._core.storage.runs.sqlite",
    "dagster._core.storage.event_log.sqlite",
    "dagster._core.storage.schedules.sqlite",
    "dagster._core.instance.factory",
    "dagster._core.storage.root",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.defs_state.blob_storage_state_storage",
    "upath.core",
    "upath.implementations.local",
)
# `indexer_core.storage.registry.REPOSITORIES`'s directory in a local LanceDB, named here so
# that this module imports no LanceDB (tests check the two agree).
REGISTRY_TABLE_DIR = "repositories.lance"


def ensure_dagster_home() -> Path:
    """`$DAGSTER_HOME`, defaulting to `.code-index/dagster_home`, created with a dagster.yaml."""
    home = config.load().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    settings_file = home / "dagster.yaml"
    if not settings_file.exists():
        settings_file.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def start_method(method: str = "") -> dict:
    """How step processes start (`CODE_INDEX_START_METHOD`: forkserver, the default where the
    platform has it, or spawn).

    A spawned step imports dagster, lancedb and this code location again, seconds of CPU
    per step that on a small machine come out of the embedding model's share. Forked from a
    server that preloaded them (`orchestration.step_preload`), a step starts warm.
    """
    method = method or (
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    if method == "forkserver":
        return {"forkserver": {"preload_modules": ["orchestration.step_preload"]}}
    return {method: {}}


@contextmanager
def step_output_to(path: Path) -> Iterator[TextIO]:
    """Send what step processes print (their console loggers write every engine event at
    DEBUG before a step's run config applies) to `path` instead of the terminal, for the
    duration: they inherit this process's standard output and error, which point there
    meanwhile. Yields a stream on the terminal (standard error) for this process's own
    progress bars. The event log, which the UI reads, keeps everything either way.

    Neither the step server nor its steps keep this process's own output open: a caller
    that reads it through a pipe sees its end when this process exits, not a second later,
    when the step server has torn itself down too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with open(path, "ab") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
    terminal = os.fdopen(os.dup(saved[2]), "w")
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in saved.items():
            os.dup2(original, fd)
            os.close(original)
        terminal.close()


def index_is_new(db_uri: str) -> bool:
    """Whether `db_uri` is a local directory with no repository registry yet: a first index,
    where every repository is new and a run covers its whole tree. Told from the file system
    alone, before LanceDB is imported (a second of CPU) or a table opened; False for an
    object store, where only LanceDB can tell."""
    if "://" in db_uri and not db_uri.startswith("file://"):
        return False
    root = Path(db_uri.removeprefix("file://")).expanduser()
    return not (root / REGISTRY_TABLE_DIR).exists()


def runs_in_process(changes: ChangeSet, settings: config.Config) -> bool:
    """Whether a run for `changes` should run its steps in the calling process.

    Starting the step server costs seconds of CPU (it imports the code location), and each
    step launch a few tenths more: more than chunking and embedding a few files. Up to
    `CODE_INDEX_IN_PROCESS_BYTES` of new or changed files, the steps run one after another
    in the caller (chunk, then embed); above it, or where vectors are missing (a whole
    shard to embed again, perhaps on several GPUs), the step server's parallel steps do.
    Only for the multiprocess executor: under Celery or Kubernetes, steps stay on workers.
    """
    from indexer_core.indexing.staleness import MISSING_VECTORS

    missing_vectors = MISSING_VECTORS in changes.stale.values()
    return not missing_vectors and _fits_in_process(changes.changed_bytes, settings)


def tree_runs_in_process(root: str, settings: config.Config) -> bool:
    """`runs_in_process` for a run over every file of `root` (a new repository, or
    `--force`): whether all its listed files come to at most `CODE_INDEX_IN_PROCESS_BYTES`."""
    if not _fits_in_process(0, settings):
        return False
    from indexer_core.discovery.listing import listed_bytes

    discovery = settings.index_settings().discovery()
    limit = settings.in_process_bytes
    return listed_bytes(root, discovery, stop_above=limit) <= limit


def _fits_in_process(changed_bytes: int, settings: config.Config) -> bool:
    limit = settings.in_process_bytes
    return settings.executor == "multiprocess" and limit > 0 and changed_bytes <= limit


def prewarm_step_server(fork_from_here: bool = False) -> bool:
    """Start the step server now, with the executor's preload, so it imports the code
    location while this process is still getting the run ready; the executor then finds it
    running and its first step forks at once. False where steps are spawned instead.

    With `fork_from_here` (the CLI, which drives the run itself), this process first imports
    what it and the server both need (`SHARED_WITH_STEPS`), then forks into the server
    (`forked_server`), which imports only the rest; where it cannot fork, or elsewhere, the
    server is a fresh interpreter that imports it all.
    Call it once the environment is final: forked steps inherit the server's. Only for the
    multiprocess executor: under Celery or Kubernetes, steps start on the workers."""
    settings = config.load()
    method = start_method(settings.start_method)
    if settings.executor != "multiprocess" or "forkserver" not in method:
        return False
    from multiprocessing import forkserver

    from orchestration import forked_server

    preload = [_EXECUTOR_PRELOAD, *method["forkserver"]["preload_modules"]]
    multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
    if not (fork_from_here and _import_shared() and forked_server.start(preload)):
        forkserver.ensure_running()
    global _server_started
    _server_started = True
    return True


def _import_shared() -> bool:
    """Import `SHARED_WITH_STEPS`, unless that would leave this process unable to fork its
    server (`forked_server.can_fork_here`: a thread started, say): then import nothing."""
    from orchestration import forked_server

    if not forked_server.can_fork_here():
        return False
    import_present(SHARED_WITH_STEPS)
    return True


def import_present(names: tuple[str, ...]) -> None:
    """Import each of `names` that exists: a warm-up of modules a process will need, where
    one that Dagster moved or dropped is simply imported later by whatever uses it. The
    pydantic models they define build on first use (`deferred_model_builds`): Dagster's
    import defines hundreds that a run never validates. The cyclic collector waits until they
    are done (`collector_paused`): its passes over the growing heap find next to nothing."""
    with collector_paused(), deferred_model_builds():
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError:
                continue


_server_started = False
R = TypeVar("R")


def call_warm(function: Callable[..., R], *args: object) -> R:
    """`function(*args)` in a process forked from the step server when this process started
    one, else here. The server has LanceDB and the code location imported; this process,
    which only drives the run, would pay about a second of CPU to import LanceDB for one
    read (the summary after a run). `function` must be importable by name."""
    if not _server_started:
        return function(*args)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
            return pool.submit(function, *args).result()
    except (BrokenProcessPool, OSError):  # the server is gone (killed): here, then, cold
        return function(*args)
