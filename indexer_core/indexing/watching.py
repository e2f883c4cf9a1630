"""Knowing that nothing under a repository changed, without a `stat` of every file (Linux inotify).

A sensor ticks every 30 s, and on an unchanged tree the `stat` scan is its whole cost. A
`TreeWatch` keeps an inotify watch on every directory the last full scan covered and
answers `changed()`: False only when no event has arrived since that scan began, the root
is still the same directory, the files outside the tree that decide what a scan lists (git's
index, exclude files) are unchanged, and every watch is in place. Anything uncertain answers
True, so the caller does the full scan it would have done anyway: a queue overflow, a
directory moved (the watches' paths are stale), watches added after the scan began (a file
made before its directory's watch would be missed), a watch limit reached, a process other
than the one that made the watch, or no inotify at all. inotify does not see changes made
on another machine to a network file system, through a hard link from outside the tree, or
under a mount placed inside it, so callers still rescan on a timer.

Use: `changed()`, then (to scan) `before_scan()`, the scan, `covered()` with what it saw.
The file descriptor is non-blocking and drained on each call: no thread, nothing runs
between ticks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, name length
# A directory that cannot be watched for these reasons needs no rescan: its parent's watch
# sees it appear, be replaced or have its permissions changed.
_PARENT_SEES = (errno.ENOENT, errno.ENOTDIR, errno.EACCES)


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()

Signature = tuple[int, int, int, int] | None  # device, inode, size, mtime; None: missing


def _signature(path: str) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class ScanStart:
    """What a scan is about to see, taken before it begins: where the root resolves to, and
    the state of the files outside the tree that decide what the scan lists."""

    resolved: str
    root: Signature
    state: tuple[tuple[str, Signature], ...]

    def still_holds(self, root: str) -> bool:
        """The root resolves to the same directory and no state file changed."""
        resolved = os.path.realpath(root)
        now = _signature(resolved)
        if (
            resolved != self.resolved
            or now is None
            or self.root is None
            or now[:2] != self.root[:2]
        ):
            return False
        return all(_signature(path) == seen for path, seen in self.state)


class TreeWatch:
    """Whether anything under `root` may have changed since the last full scan began."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.unavailable: str | None = (
            None if _LIBC is not None else "inotify is not available here"
        )
        self._fd: int | None = None
        self._pid = os.getpid()
        self._watches: dict[str, int] = {}  # directory (relative, "" = root) -> watch descriptor
        self._start: ScanStart | None = None  # of the last covered scan
        self._dirty = True  # nothing is known until a scan has been covered

    def changed(self) -> bool:
        """Drain pending events; True when the tree may differ from the last covered scan."""
        if self.unavailable is not None or self._fd is None or os.getpid() != self._pid:
            return True
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                break
            except OSError as exc:
                self._give_up(f"reading inotify events failed: {exc.strerror}")
                return True
            if self._read_events(data):
                self.close()  # overflow or a moved directory: every watch is rebuilt after a scan
                return True
        if self._start is None or not self._start.still_holds(self.root):
            self._dirty = True
        return self._dirty

    def before_scan(self, state_files: Iterable[str] = ()) -> ScanStart:
        """Call after `changed()` and before the scan: what `covered()` will compare against."""
        resolved = os.path.realpath(self.root)
        return ScanStart(
            resolved, _signature(resolved), tuple((p, _signature(p)) for p in state_files)
        )

    def covered(self, directories: Iterable[str], start: ScanStart) -> None:
        """After a scan begun at `start`: watch exactly `directories` (relative to the root).

        Events queued since `changed()` stay queued for the next call. Watches added now
        come after the scan began, so a file made in such a directory before its watch
        existed could have been missed: the next `changed()` then still answers True, once.
        """
        if self.unavailable is not None or os.getpid() != self._pid:
            return
        if self._fd is None:
            fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                self._give_up(f"inotify_init1 failed: {os.strerror(ctypes.get_errno())}")
                return
            self._fd = fd
        wanted = set(directories)
        for rel in [d for d in self._watches if d not in wanted]:
            _LIBC.inotify_rm_watch(self._fd, self._watches.pop(rel))
        uncertain = False
        for rel in sorted(wanted - self._watches.keys()):
            full = os.path.join(start.resolved, rel) if rel else start.resolved
            wd = _LIBC.inotify_add_watch(self._fd, os.fsencode(full), WATCH_MASK)
            if wd >= 0:
                self._watches[rel] = wd
                uncertain = True
                continue
            code = ctypes.get_errno()
            if code == errno.ENOSPC:
                self._give_up("inotify watch limit reached (raise fs.inotify.max_user_watches)")
                return
            if not rel and code in _PARENT_SEES:
                self.close()  # the root itself is gone or replaced: try again after the next scan
                return
            if code not in _PARENT_SEES:
                self._give_up(f"cannot watch {full!r}: {os.strerror(code)}")
                return
        self._start = start
        self._dirty = uncertain

    @property
    def watched(self) -> int:
        return len(self._watches)

    def close(self) -> None:
        if self._fd is not None and os.getpid() == self._pid:
            os.close(self._fd)
        self._fd = None
        self._watches.clear()
        self._start = None
        self._dirty = True

    def _read_events(self, data: bytes) -> bool:
        """Mark dirty on any event; True when the watches themselves can no longer be trusted."""
        offset, rebuild = 0, False
        by_wd: dict[int, str] | None = None
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            if mask & IN_IGNORED:  # the kernel dropped a watch: its directory is gone
                if by_wd is None:
                    by_wd = {w: d for d, w in self._watches.items()}
                if wd not in by_wd:
                    continue  # one we removed ourselves: nothing happened in the tree
                self._watches.pop(by_wd[wd], None)
            self._dirty = True
            if mask & (IN_Q_OVERFLOW | IN_MOVE_SELF) or (mask & IN_ISDIR and mask & IN_MOVED_FROM):
                rebuild = True
        return rebuild

    def _give_up(self, reason: str) -> None:
        self.close()
        self.unavailable = reason


def scanned_directories(paths: Iterable[str], walked: Iterable[str] = ()) -> set[str]:
    """Every directory holding a scanned path, with all its ancestors ("" is the root)."""
    directories = {""}
    directories.update(walked)
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent and parent not in directories:
            directories.add(parent)
            parent = parent.rpartition("/")[0]
    return directories
