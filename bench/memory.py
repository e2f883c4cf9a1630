"""Peak memory of a process tree, sampled from /proc (Linux; no psutil needed).

Each sample reads VmHWM (the kernel's own peak RSS of the process so far) and VmRSS of the
root process and every descendant, so a short-lived step process is caught as long as it
lives through one sample.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field


@dataclass
class ProcessPeak:
    pid: int
    label: str
    peak_rss_mb: float = 0.0
    first_seen: float = 0.0
    last_seen: float = 0.0
    cpu_seconds: float = 0.0  # user + system, at the last sample


@dataclass
class TreeSampler:
    """Samples the process tree under `root_pid` every `interval` seconds in a thread."""

    root_pid: int = field(default_factory=os.getpid)
    interval: float = 0.2
    peaks: dict[int, ProcessPeak] = field(default_factory=dict)
    peak_total_mb: float = 0.0  # largest sum of RSS over the tree at one sample
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0

    def __enter__(self) -> TreeSampler:  # noqa: PYI034
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        now = time.perf_counter() - self._t0
        total = 0.0
        for pid in descendants(self.root_pid) | {self.root_pid}:
            status = _status(pid)
            if status is None:
                continue
            rss = status.get("VmRSS", 0) / 1024
            hwm = status.get("VmHWM", 0) / 1024
            total += rss
            peak = self.peaks.get(pid)
            if peak is None:
                peak = self.peaks[pid] = ProcessPeak(pid, _label(pid), first_seen=now)
            peak.peak_rss_mb = max(peak.peak_rss_mb, hwm, rss)
            peak.last_seen = now
            peak.cpu_seconds = max(peak.cpu_seconds, _cpu_seconds(pid))
        self.peak_total_mb = max(self.peak_total_mb, total)

    def cpu_seconds(self, include_root: bool = False) -> float:
        """User + system CPU seconds of the tree's processes, each at its last sample (a
        process that lived less than one interval is missed): on a machine shared with
        other work, a measure of cost that the others' load does not inflate as it does
        wall time."""
        return sum(
            p.cpu_seconds for p in self.peaks.values() if include_root or p.pid != self.root_pid
        )

    def summary(self) -> dict[str, object]:
        procs = sorted(self.peaks.values(), key=lambda p: -p.peak_rss_mb)
        return {
            "processes": len(procs),
            "peak_total_rss_mb": round(self.peak_total_mb, 1),
            "peak_process_rss_mb": round(procs[0].peak_rss_mb, 1) if procs else 0.0,
            "per_process": [
                {
                    "pid": p.pid,
                    "label": p.label,
                    "peak_rss_mb": round(p.peak_rss_mb, 1),
                    "seen_s": [round(p.first_seen, 1), round(p.last_seen, 1)],
                }
                for p in procs
            ],
        }


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _status(pid: int) -> dict[str, int] | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    out: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _label(pid: int) -> str:
    """A short name for a process: the Dagster step it runs, if its command line says so."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return "?"
    text = " ".join(args)
    for marker in ("chunk_shard", "embed_as_chunks_land", "plan_partitions", "check_tables"):
        if marker in text:
            return marker
    if "multiprocessing" in text or "spawn_main" in text:
        return "spawned python (step)"
    return text[:80]


def self_peak_mb() -> float:
    status = _status(os.getpid()) or {}
    return round(status.get("VmHWM", 0) / 1024, 1)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process from /proc/PID/stat (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@dataclass
class ReapedCPU:
    """User + system CPU seconds of every process started inside the `with` block, however
    deep, counted exactly and without sampling: a sampler that reads /proc ten times a second
    takes CPU from the run it measures (1.8 s of a 40 s run on 2 cores). This process becomes
    the subreaper of its descendants (Linux), so orphans such as a forkserver come back to it;
    at the end it reaps them all, and the kernel's rusage of reaped children holds every one
    of them, grandchildren included. `seconds` stays None where the platform has no
    subreaper, or when a descendant outlived `reap_timeout`."""

    reap_timeout: float = 30.0
    seconds: float | None = None
    _before: float = 0.0
    _subreaper: bool = False

    def __enter__(self) -> ReapedCPU:  # noqa: PYI034
        self._subreaper = _set_child_subreaper(True)
        self._before = _children_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._subreaper:
            return
        reaped = _reap_all(self.reap_timeout)
        _set_child_subreaper(False)
        if reaped:
            self.seconds = _children_cpu() - self._before


def _set_child_subreaper(on: bool) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap_all(timeout: float) -> bool:
    """Wait for every child of this process (orphans included) to end; False at timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            time.sleep(0.05)
    return False
