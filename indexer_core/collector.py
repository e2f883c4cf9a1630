"""When Python's cyclic garbage collector runs: not where it only costs time.

Reference counting frees almost everything this project allocates. The cyclic collector is
for the rest, and its passes cost in proportion to the objects alive:

- Importing Dagster, its storages and LanceDB creates hundreds of thousands of long-lived
  objects. As the heap grows, the collector's full passes walk all of them again and again
  for almost no garbage: about 0.3 s of the command's 1.8 s of shared imports here.
- Chunking a file allocates many short-lived, acyclic objects (syntax nodes, spans,
  strings), and the passes over them (and over the process's long-lived caches) cost ~10% of
  the time for nothing.
- A process that forks workers (the step server) hands each one its whole heap. A full pass
  in a worker walks everything the server imported, and writing the collector's own fields
  in those objects copies their pages into the worker.

`collector_paused` covers the first two; `freeze_heap` the third, as CPython's documentation
of `gc.freeze` recommends for a process that forks without exec.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside this block; a pass runs later, as usual, when the counts
    call for one. Inside a block that already paused it, nothing changes."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def freeze_heap() -> None:
    """Put every object alive now out of the collector's reach for the rest of the process
    and of the processes it forks (`gc.freeze`): their passes then walk only what they
    allocate themselves. Objects frozen are never collected, so call it once a process holds
    what it keeps (its imports), not in a loop."""
    gc.freeze()
