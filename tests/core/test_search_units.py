"""Which spans compete in the ranking stage, on a real index (real LanceDB, the packaged model):
the parts of a long run of top-level statements are separate results, and the further
chunks of a file the query clearly points at are not pushed below a weakly matching file."""

from __future__ import annotations

import pytest

from indexer_core.search import rerank
from indexer_core.search.index_view import open_index
from indexer_core.search.query import search
from tests.core.ranking_corpus import build_index

# Functions defined inside a module-level `if`: the chunker sees one long run of top-level
# statements and splits it into parts, each holding different functions.
_PLATFORM = """
import os
import shutil

if os.name == "posix":

    def disk_usage_report(path):
        total, used, free = shutil.disk_usage(path)
        percent = used * 100 // max(total, 1)
        lines = [f"total {total}", f"used {used}", f"free {free}"]
        lines.append(f"usage {percent} percent of the volume")
        return "\\n".join(lines)

    def change_file_owner(path, uid, gid):
        stat = os.stat(path)
        if stat.st_uid == uid and stat.st_gid == gid:
            return False
        os.chown(path, uid, gid)
        return True

    def spawn_background_worker(argv, env=None):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            os.execvpe(argv[0], argv, env or dict(os.environ))
        return pid

    def read_symbolic_link_target(path):
        target = os.readlink(path)
        if not os.path.isabs(target):
            target = os.path.join(os.path.dirname(path), target)
        return os.path.normpath(target)

    def temporary_directory_name(prefix):
        base = os.environ.get("TMPDIR", "/tmp")
        name = f"{prefix}-{os.getpid()}"
        path = os.path.join(base, name)
        os.makedirs(path, exist_ok=True)
        return path

    def terminal_window_size(fd=1):
        size = os.get_terminal_size(fd)
        columns, rows = size.columns, size.lines
        if columns <= 0 or rows <= 0:
            raise OSError("no terminal")
        return columns, rows

    def load_average_summary():
        one, five, fifteen = os.getloadavg()
        cores = os.cpu_count() or 1
        busy = one / cores
        return {"1m": one, "5m": five, "15m": fifteen, "per_core": busy}

    def sync_and_drop_page_cache():
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\\n")
        return True
"""

_QUEUE = """
def push_task(queue, task, priority=0):
    entry = {"task": task, "priority": priority, "attempts": 0}
    queue.append(entry)
    queue.sort(key=lambda item: -item["priority"])
    return len(queue)


def pop_task(queue):
    if not queue:
        raise IndexError("the task queue is empty")
    entry = queue.pop(0)
    entry["attempts"] += 1
    return entry["task"]


def peek_task(queue):
    if not queue:
        return None
    entry = queue[0]
    return entry["task"], entry["priority"]


def retry_failed_tasks(queue, failed, limit=3):
    again = [entry for entry in failed if entry["attempts"] < limit]
    for entry in again:
        push_task(queue, entry["task"], entry["priority"] - 1)
    return len(again)


def drain_tasks(queue, handler):
    done = 0
    while queue:
        handler(pop_task(queue))
        done += 1
    return done
"""

_UTIL = """
def format_bytes(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
"""

_JAVA = """
public class RateCounter {
    private final long windowMillis;
    private final long[] buckets;
    private long total;
    private long startedAt;

    public RateCounter(long windowMillis, int bucketCount) {
        if (windowMillis <= 0 || bucketCount <= 0) {
            throw new IllegalArgumentException("window and buckets must be positive");
        }
        this.windowMillis = windowMillis;
        this.buckets = new long[bucketCount];
        this.startedAt = System.currentTimeMillis();
    }

    public void record(long events, long nowMillis) {
        int slot = (int) ((nowMillis / bucketMillis()) % buckets.length);
        buckets[slot] += events;
        total += events;
    }

    public double perSecond(long nowMillis) {
        long elapsed = Math.max(1, Math.min(windowMillis, nowMillis - startedAt));
        return total * 1000.0 / elapsed;
    }

    private long bucketMillis() {
        return Math.max(1, windowMillis / buckets.length);
    }

    public void reset(long nowMillis) {
        java.util.Arrays.fill(buckets, 0L);
        total = 0;
        startedAt = nowMillis;
    }

    public long busiestBucket() {
        long best = 0;
        for (long value : buckets) {
            best = Math.max(best, value);
        }
        return best;
    }

    public String describe() {
        return "RateCounter[window=" + windowMillis + "ms, buckets=" + buckets.length
            + ", total=" + total + "]";
    }
}
"""

FILES = {
    "src/platform_ops.py": _PLATFORM,
    "src/task_queue.py": _QUEUE,
    "src/util.py": _UTIL,
    "src/RateCounter.java": _JAVA,
}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    return build_index(tmp_path_factory.mktemp("units"), "units", FILES)


def _line_of(needle: str) -> int:
    lines = _PLATFORM.lstrip("\n").split("\n")
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_the_corpus_has_a_statement_run_in_parts(db):
    rows = [r for r in open_index(db).catalog().names.rows if r and r["path"] == FILES_RUN]
    assert len(rows) >= 3 and {r["kind"] for r in rows} == {"module"}
    assert {r["parts"] for r in rows} == {len(rows)}


FILES_RUN = "src/platform_ops.py"


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
@pytest.mark.parametrize(
    "query, defines",
    [
        (
            "resolve where a symbolic link points to as a normalised path",
            "read_symbolic_link_target",
        ),
        ("number of columns and rows of the terminal window", "terminal_window_size"),
        ("flush file systems to disk and drop the kernel page cache", "sync_and_drop_page_cache"),
    ],
)
def test_each_part_of_a_statement_run_is_its_own_result(db, mode, query, defines):
    hits = [h for h in search(db, query, k=10, mode=mode) if h.path == FILES_RUN]
    if mode != "text":  # (BM25 lists only the parts holding the query's words)
        assert len(hits) >= 2  # several parts of the one run, not one result for all of it
    assert len({(h.start_line, h.end_line) for h in hits}) == len(hits)
    line = _line_of(f"def {defines}(")
    assert any(h.start_line <= line <= h.end_line for h in hits[:2]), [h.location() for h in hits]
    for hit in hits:  # each names the run it belongs to, as a long unit's part does
        assert hit.parts > 1 and (hit.unit_start, hit.unit_end) == (1, hits[0].unit_end)


def test_expand_returns_the_whole_run_once(db):
    query = "number of columns and rows of the terminal window"
    hits = [h for h in search(db, query, k=10, expand=True) if h.path == FILES_RUN]
    assert len(hits) == 1
    assert (hits[0].start_line, hits[0].end_line) == (hits[0].unit_start, hits[0].unit_end)
    assert (
        "def terminal_window_size(" in hits[0].content
        and "def disk_usage_report(" in hits[0].content
    )


def test_further_chunks_of_a_strong_file_are_not_compounded_away(db):
    """A file's further chunks each rank at their own score x REPEAT: the fifth method of
    the file the query points at still beats a weakly matching file's best chunk (with
    REPEAT^(n-1) it fell behind it)."""
    catalog = open_index(db).catalog()
    rows = [r for r in catalog.names.rows if r]
    methods = sorted(
        (r for r in rows if r["path"] == "src/task_queue.py" and r["kind"] == "function"),
        key=lambda r: r["start_line"],
    )
    weak = next(r for r in rows if r["path"] == "src/util.py" and r["kind"] == "function")
    assert len(methods) >= 5
    strong = [0.9, 0.85, 0.8, 0.75, 0.7]
    base = {r["chunk_id"]: s for r, s in zip(methods, strong)}
    base[weak["chunk_id"]] = 0.45
    picked = [(cid, None) for cid in sorted(base, key=lambda c: -base[c])]
    picks = rerank.rerank(catalog, picked, base, "a list of jobs", "natural", 10)
    order = [p.chunk_id for p in picks]
    assert order.index(weak["chunk_id"]) == len(strong)  # after every method of the queue
    for pick in picks[1 : len(strong)]:
        assert pick.why["repeat"].endswith(f"x{rerank.REPEAT}")


def test_a_constructor_is_a_unit_not_statements(db):
    hits = search(db, "create a rate counter over a time window", k=10, explain=True)
    ctor = next(h for h in hits if h.kind == "constructor")
    assert ctor.name == "RateCounter" and "statements" not in ctor.why
    run = search(db, "number of columns and rows of the terminal window", k=3, explain=True)
    assert run[0].kind == "module" and run[0].why["statements"] == "module x0.9"  # as before
