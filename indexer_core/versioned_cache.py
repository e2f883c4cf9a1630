"""A value derived from one version of a table, rebuilt in the background when the table moves.

A long-lived search process (the MCP server) holds the chunk catalogue and row-id maps per
table version. Rebuilding them reads every row: seconds on a large table. Done inside a
query, the first query after each index run (a sensor run after every edit) would take
that long. Instead the query starts one rebuild, waits for it a short while, and when it is
not done serves the previous version's value: search already reads whatever that value
lacks (new rows, moved row ids) from the table, so it is only less complete, never wrong.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")

REFRESH_WAIT_SECONDS = 1.0
_log = logging.getLogger(__name__)


class VersionedCache(Generic[T]):
    """The value for the newest table version, or, while it is being built, the last one."""

    def __init__(self, name: str, wait: float = REFRESH_WAIT_SECONDS) -> None:
        self.name = name
        self.wait = wait
        self._current: tuple[int, T] | None = None
        self._pending: Future | None = None
        self._lock = threading.Lock()
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"code-index-{name}")

    def get(self, version: int, build: Callable[[], T]) -> T:
        """The value for `version`: built here the first time, in the background afterwards."""
        with self._lock:
            if self._current is not None and self._current[0] == version:
                return self._current[1]
            if self._current is None:  # nothing to serve meanwhile: build it now
                value = build()
                self._current = (version, value)
                return value
            if self._pending is None:
                self._pending = self._builder.submit(self._rebuild, version, build)
            pending = self._pending
        with contextlib.suppress(FutureTimeout):  # still building: serve the previous version's value
            pending.result(timeout=self.wait)
        with self._lock:
            return self._current[1]

    @property
    def version(self) -> int | None:
        with self._lock:
            return self._current[0] if self._current is not None else None

    def _rebuild(self, version: int, build: Callable[[], T]) -> None:
        try:
            value = build()
            with self._lock:
                self._current = (version, value)
        except Exception:  # noqa: BLE001 - the previous value stays in service; the next call tries again
            _log.exception("rebuilding %s for table version %s failed", self.name, version)
        finally:
            with self._lock:
                self._pending = None
