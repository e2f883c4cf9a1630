"""The CLI's step server, forked from the CLI once it has imported what both need."""

from __future__ import annotations

import time
from pathlib import Path

from tests.orchestration.helpers import python_output

SERVER_INFO = (
    "import os, sys\n"
    "from multiprocessing import forkserver\n"
    "def server_info():\n"
    "    pid = forkserver._forkserver._forkserver_pid\n"
    "    stat = open(f'/proc/{pid}/stat').read()\n"
    "    ppid = int(stat[stat.rindex(')') + 2 :].split()[1])\n"
    "    cmdline = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
    "    caught = [l for l in open(f'/proc/{pid}/status') if l.startswith('SigCgt:')][0]\n"
    "    return pid, ppid, cmdline, int(caught.split()[1], 16)\n"
)


def test_the_cli_forks_its_step_server_once_it_has_what_both_need(tmp_path) -> None:
    """Forked, the server has this process's imports and state (a value set at run time
    reaches the steps it forks), and imports LanceDB alone; it keeps none of this process's
    signal handlers and none of its descriptors (a pipe's reader sees its end as soon as this
    process closes the write end)."""
    script = SERVER_INFO + (
        "import signal, select, orchestration.launch as launch\n"
        "import tests.orchestration.helpers as helpers\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)\n"
        "helpers.MARK = 'set before the fork'\n"
        "read, write = os.pipe()\n"
        "assert launch.prewarm_step_server(fork_from_here=True)\n"
        "os.close(write)\n"
        "ends = bool(select.select([read], [], [], 10)[0]) and os.read(read, 1) == b''\n"
        "print('pipe ends', ends)\n"
        # read once it serves, so once it has set itself up
        "mark = launch.call_warm(helpers.module_mark)\n"
        "pid, ppid, cmdline, caught = server_info()\n"
        "print('child of this process', ppid == os.getpid())\n"
        "print('same command line', cmdline == open('/proc/self/cmdline', 'rb').read())\n"
        "print('server catches SIGTERM', bool(caught & (1 << (signal.SIGTERM - 1))))\n"
        "print('shared', sorted(m for m in launch.SHARED_WITH_STEPS if m in sys.modules))\n"
        "print('mark', mark)\n"
        "print('server has lancedb', launch.call_warm(helpers.lancedb_loaded))\n"
        "print('lock free', launch.call_warm(helpers.forkserver_lock_free))\n"
        "print('here', helpers.lancedb_loaded())\n"
        "print('step collector', launch.call_warm(helpers.collector_state))\n"
        "print('own collector', helpers.collector_state())\n"
    )
    out = python_output(script, env={"CODE_INDEX_HOME": str(tmp_path / "home")})
    from orchestration.launch import SHARED_WITH_STEPS

    assert out.splitlines()[-11:-2] == [
        "pipe ends True",
        "child of this process True",
        "same command line True",
        "server catches SIGTERM False",
        f"shared {sorted(SHARED_WITH_STEPS)}",
        "mark set before the fork",
        "server has lancedb True",
        "lock free True",
        "here False",
    ], out
    # A step's collector runs, over what it allocates: the imports it was forked with (the
    # server's, LanceDB's included) are frozen, and so are this process's own.
    step, own = (line.split(" ", 2)[2] for line in out.splitlines()[-2:])
    assert step.startswith("on, ") and int(step.split()[1]) > 100_000, out
    assert own.startswith("on, ") and 50_000 < int(own.split()[1]) < int(step.split()[1]), out


def test_a_process_with_a_thread_or_lancedb_spawns_its_server_instead(tmp_path) -> None:
    """A fork copies only the calling thread, and LanceDB's runtime may be mid-request: then
    the server is a fresh interpreter, as without `fork_from_here`."""
    script = SERVER_INFO + (
        "import threading, orchestration.launch as launch\n"
        "from orchestration import forked_server\n"
        "import tests.orchestration.helpers as helpers\n"
        "print('alone', forked_server.can_fork_here())\n"
        "from indexer_core.storage.lancedb_import import import_lancedb\n"
        "import_lancedb()\n"
        "print('with lancedb', forked_server.can_fork_here())\n"
        "del sys.modules['lancedb']\n"
        "done = threading.Event()\n"
        "threading.Thread(target=done.wait).start()\n"
        "print('with a thread', forked_server.can_fork_here())\n"
        "helpers.MARK = 'set before the fork'\n"
        "assert launch.prewarm_step_server(fork_from_here=True)\n"
        # a spawned server has run its command line once it serves (not before its exec)
        "mark = repr(launch.call_warm(helpers.module_mark))\n"
        "pid, ppid, cmdline, caught = server_info()\n"
        "print('spawned', b'from multiprocessing.forkserver import main' in cmdline)\n"
        "print('mark', mark)\n"
        "done.set()\n"
    )
    out = python_output(script, env={"CODE_INDEX_HOME": str(tmp_path / "home")})
    assert out.splitlines()[-5:] == [
        "alone True",
        "with lancedb False",
        "with a thread False",
        "spawned True",
        "mark ''",
    ], out


def test_the_forked_server_ends_with_the_process_that_forked_it(tmp_path) -> None:
    script = SERVER_INFO + (
        "import orchestration.launch as launch\n"
        "assert launch.prewarm_step_server(fork_from_here=True)\n"
        "print('server', server_info()[0])\n"
    )
    out = python_output(script, env={"CODE_INDEX_HOME": str(tmp_path / "home")})
    pid = int(out.splitlines()[-1].split()[1])
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (an exited one may linger as a zombie until reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
