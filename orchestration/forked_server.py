"""Start multiprocessing's forkserver as a fork of this process, not a fresh interpreter.

The CLI and the step server both need Dagster, the code location and the instance storages:
about 2.4 s of CPU to import on these machines. Spawned, the server imports them again while
the CLI does; on two cores the two imports contend, and the run's first steps wait for the
server. Forked once the CLI has them, the server shares them and imports only what the CLI
never needs (LanceDB, `orchestration.step_preload`), while the CLI opens the instance and
creates the run.

The server then runs CPython's own forkserver loop (`multiprocessing.forkserver.main`), set
up as `ForkServer.ensure_running` would have set it up, so the executor's step processes,
and `launch.call_warm`, connect to it as to a spawned one. It starts clean of this process:
no file descriptor but its standard streams and the forkserver's own, default signal
handlers, no exit handlers of this process (it leaves through `os._exit`).

It forks only where the internals are the ones known here, CPython 3.10 to 3.13 (3.14 added
an authentication key to the protocol), and from a state like the one the server forks its
steps from: one Python thread (a fork copies no other), and LanceDB not loaded (its runtime
may be mid-request in a process that has used it). The native pools that numpy and pyarrow
start on import (OpenBLAS, jemalloc) are idle and handle forks: the server forks every step
with them loaded. Otherwise `start` returns False and the caller spawns the server as usual.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import traceback
from multiprocessing import connection, forkserver, resource_tracker, util

from indexer_core.collector import freeze_heap

_SERVER_FIELDS = ("_lock", "_forkserver_address", "_forkserver_alive_fd", "_forkserver_pid")


def can_fork_here() -> bool:
    """Whether `start` would fork: a known forkserver, one Python thread, no LanceDB."""
    server = getattr(forkserver, "_forkserver", None)
    known = (3, 10) <= sys.version_info[:2] < (3, 14) and all(
        hasattr(server, name) for name in _SERVER_FIELDS
    )
    alone = threading.active_count() == 1 and "lancedb" not in sys.modules
    return known and hasattr(forkserver, "main") and alone


def start(preload: list[str]) -> bool:
    """Fork this process into the forkserver that imports `preload` and serves forks.
    False, changing nothing, where it cannot (`can_fork_here`) or one is already running."""
    server = forkserver._forkserver
    if not can_fork_here():
        return False
    with server._lock:
        if server._forkserver_pid is not None:
            return False
        resource_tracker.ensure_running()  # its fd goes to each step, as ensure_running does
        with socket.socket(socket.AF_UNIX) as listener:
            address = connection.arbitrary_address("AF_UNIX")
            listener.bind(address)
            if not util.is_abstract_socket_namespace(address):
                os.chmod(address, 0o600)
            listener.listen()
            # Every client holds the write end of `alive`; the server ends once all are gone.
            alive_r, alive_w = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            freeze_heap()  # the imports both keep: no pass in either walks them again
            try:
                pid = os.fork()
            except OSError:  # no memory or processes left for a fork: spawn it, as usual
                os.close(alive_r)
                os.close(alive_w)
                return False
            if pid == 0:
                server._lock = threading.Lock()  # held by this thread at the fork
                _serve(listener.fileno(), alive_r, preload)
            os.close(alive_r)
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
    return True


def _serve(listener_fd: int, alive_r: int, preload: list[str]) -> None:
    """The forked child: clean up what it inherited, then serve until its clients are gone."""
    code = 1
    try:
        _close_inherited_fds(keep={listener_fd, alive_r})
        _forget_resource_tracker()
        _default_signal_handlers()
        forkserver.main(listener_fd, alive_r, preload)
        code = 0
    except SystemExit as done:  # how the forkserver loop ends: every client has exited
        code = done.code if isinstance(done.code, int) else 0
    except BaseException:  # noqa: BLE001 - reported on its stderr (the steps' log), then gone
        traceback.print_exc()
    finally:
        os._exit(code)


def _close_inherited_fds(keep: set[int]) -> None:
    """Close every descriptor but the standard streams and `keep`: the parent's terminal,
    pipes and sockets must not stay open in a server that outlives a step or two."""
    start = 3
    for fd in sorted(keep):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, _max_fd())


def _forget_resource_tracker() -> None:
    """The parent's tracker pipe is closed here: like a spawned server, this one starts with
    no tracker (each step it forks is handed the parent's), and would start its own on use
    rather than write to a descriptor number something else may reuse."""
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is not None and hasattr(tracker, "_fd"):
        tracker._fd = None
        tracker._pid = None


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 65536


def _default_signal_handlers() -> None:
    """A fresh interpreter's handlers: this process's own (the CLI's) are not the server's."""
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
