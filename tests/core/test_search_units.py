"""Which spans compete in the ranking stage, on a real index (real LanceDB, the packaged model):
the parts of a long run of top-level statements are separate results, and the further
chunks of a file the query clearly points at are not pushed below a weakly matching file."""

from __future__ import annotations

import pytest

from indexer_core.search import rerank
from indexer_core.search.index_view import open_index
from indexer_core.search.query import search
from indexer_core.search.ranking import summed
from tests.core.ranking_corpus import build_index

# Functions inside an immediately invoked function (the browser-era module pattern): the
# chunker sees one long run of top-level statements and splits it into parts, each holding
# different functions. (Functions inside a module-level `if` were the example before they
# became units, `_COMPAT`.)
_PLATFORM = """
(function (root) {
  "use strict";
  var fs = require("fs");
  var path = require("path");

  function diskUsageReport(dir) {
    var stat = fs.statfsSync(dir);
    var total = stat.blocks * stat.bsize;
    var used = total - stat.bfree * stat.bsize;
    var percent = Math.floor((used * 100) / Math.max(total, 1));
    var lines = ["total " + total, "used " + used, "free " + (total - used)];
    lines.push("usage " + percent + " percent of the volume");
    return lines.join("\\n");
  }

  function changeFileOwner(file, uid, gid) {
    var stat = fs.statSync(file);
    if (stat.uid === uid && stat.gid === gid) {
      return false;
    }
    fs.chownSync(file, uid, gid);
    return true;
  }

  function spawnBackgroundWorker(argv, env) {
    var child = require("child_process").spawn(argv[0], argv.slice(1), {
      detached: true,
      env: env || process.env,
    });
    child.unref();
    return child.pid;
  }

  function readSymbolicLinkTarget(file) {
    var target = fs.readlinkSync(file);
    if (!path.isAbsolute(target)) {
      target = path.join(path.dirname(file), target);
    }
    return path.normalize(target);
  }

  function temporaryDirectoryName(prefix) {
    var base = process.env.TMPDIR || "/tmp";
    var name = prefix + "-" + process.pid;
    var dir = path.join(base, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  function terminalWindowSize(stream) {
    var out = stream || process.stdout;
    var columns = out.columns, rows = out.rows;
    if (!columns || !rows || columns <= 0 || rows <= 0) {
      throw new Error("no terminal");
    }
    return [columns, rows];
  }

  function loadAverageSummary() {
    var load = require("os").loadavg();
    var cores = require("os").cpus().length || 1;
    var busy = load[0] / cores;
    return { "1m": load[0], "5m": load[1], "15m": load[2], per_core: busy };
  }

  function syncAndDropPageCache() {
    fs.fsyncSync(fs.openSync("/", "r"));
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3\\n");
    return true;
  }

  root.platformOps = { diskUsageReport: diskUsageReport, terminalWindowSize: terminalWindowSize };
})(this);
"""

# Functions defined inside a module-level `if` are units like top-level ones.
_COMPAT = """
import os

if os.name == "nt":

    def make_hard_link(source, target):
        import ctypes
        created = ctypes.windll.kernel32.CreateHardLinkW(target, source, None)
        if not created:
            raise OSError("could not create the hard link")
        return target

else:

    def make_hard_link(source, target):
        os.link(source, target)
        return target
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
    "src/platform_ops.js": _PLATFORM,
    "src/compat.py": _COMPAT,
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


FILES_RUN = "src/platform_ops.js"


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
@pytest.mark.parametrize(
    "query, defines",
    [
        (
            "resolve where a symbolic link points to as a normalised path",
            "readSymbolicLinkTarget",
        ),
        ("number of columns and rows of the terminal window", "terminalWindowSize"),
        ("flush file systems to disk and drop the kernel page cache", "syncAndDropPageCache"),
    ],
)
def test_each_part_of_a_statement_run_is_its_own_result(db, mode, query, defines):
    hits = [h for h in search(db, query, k=10, mode=mode) if h.path == FILES_RUN]
    if mode != "text":  # (BM25 lists only the parts holding the query's words)
        assert len(hits) >= 2  # several parts of the one run, not one result for all of it
    assert len({(h.start_line, h.end_line) for h in hits}) == len(hits)
    line = _line_of(f"function {defines}(")
    assert any(h.start_line <= line <= h.end_line for h in hits[:2]), [h.location() for h in hits]
    for hit in hits:  # each names the run it belongs to, as a long unit's part does
        assert hit.parts > 1 and (hit.unit_start, hit.unit_end) == (1, hits[0].unit_end)


def test_expand_returns_the_whole_run_once(db):
    query = "number of columns and rows of the terminal window"
    hits = [h for h in search(db, query, k=10, expand=True) if h.path == FILES_RUN]
    assert len(hits) == 1
    assert (hits[0].start_line, hits[0].end_line) == (hits[0].unit_start, hits[0].unit_end)
    assert (
        "function terminalWindowSize(" in hits[0].content
        and "function diskUsageReport(" in hits[0].content
    )


def test_further_chunks_of_a_strong_file_are_not_compounded_away(db):
    """A file's further chunks each rank at their own score x REPEAT: the fifth method of
    the file the query points at still beats a weakly matching file's best chunk (with
    REPEAT^(n-1) it fell behind it)."""
    catalog = open_index(db).catalog()
    methods = _functions_of(catalog, "src/task_queue.py")
    weak = _functions_of(catalog, "src/util.py")[0]
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


def test_a_function_inside_a_module_level_if_is_its_own_unit(db):
    """The hit is the function (with the clause that opens it), named and scoped like a
    top-level `def`, not a part of a run of module statements."""
    hits = search(db, "create a hard link to a file on windows", k=3, explain=True)
    hit = next(h for h in hits if h.path == "src/compat.py")
    assert (hit.kind, hit.name, hit.scope, hit.parts) == ("function", "make_hard_link", "", 1)
    assert "statements" not in hit.why
    assert hit.content.startswith('if os.name == "nt":') and "CreateHardLinkW" in hit.content


def _functions_of(catalog, path: str) -> list[dict]:
    """The catalogue's function rows of one file, in source order."""
    rows = (r for r in catalog.names.rows if r and r["path"] == path and r["kind"] == "function")
    return sorted(rows, key=lambda r: r["start_line"])


def _contributions(by_ranking: dict[str, dict[str, float]]) -> tuple[dict, dict]:
    """Fused base scores and per-ranking contributions, as hybrid search passes them."""
    return summed(by_ranking), by_ranking


def test_a_file_two_rankings_lead_with_two_functions_ranks_first(db):
    """Hybrid, a sentence: the embedding's best chunk and BM25's best chunk are two functions
    of one file, each with half marks; a chunk of another file second in both has more than
    either. Weighed per chunk the other file led; each ranking's best for the file, summed,
    puts the file both rankings lead first. Not for identifier queries or one ranking."""
    catalog = open_index(db).catalog()
    queue = _functions_of(catalog, "src/task_queue.py")
    other = _functions_of(catalog, "src/util.py")[0]
    first_by_vector, first_by_text = queue[0]["chunk_id"], queue[1]["chunk_id"]
    base, evidence = _contributions(
        {
            "vector": {first_by_vector: 0.43, other["chunk_id"]: 0.38},
            "text": {first_by_text: 0.43, other["chunk_id"]: 0.36},
        }
    )
    picked = [(cid, None) for cid in sorted(base, key=lambda c: (-base[c], c))]

    def first_file(kind, with_evidence=True):
        picks = rerank.rerank(
            catalog, picked, base, "a list of jobs", kind, 10, evidence if with_evidence else None
        )
        return catalog.row(picks[0].chunk_id)["path"], picks

    path, picks = first_file("natural")
    assert path == "src/task_queue.py"
    top = picks[0]
    assert top.chunk_id in (first_by_vector, first_by_text)
    assert top.why["file_rankings"].startswith("+0.43")  # the other ranking's best, in full
    assert top.score == pytest.approx(0.43 + rerank.EVIDENCE_SHARE * 0.43 + 0.43)
    assert first_file("natural", with_evidence=False)[0] == "src/util.py"
    assert first_file("identifier")[0] == "src/util.py"


def test_file_evidence_is_hybrid_sentences_only(db, monkeypatch):
    """On real searches: vector and text results and hybrid identifier results do not change
    with file evidence; some hybrid sentence result is lifted by it and says so."""
    sentence = "count events in a sliding time window"  # two methods lead the two rankings

    def run(query, mode):
        return [(h.chunk_id, h.rank_score) for h in search(db, query, k=10, mode=mode)]

    with_evidence = {
        (q, m): run(q, m) for q in (sentence, "push_task") for m in ("hybrid", "vector", "text")
    }
    lifted = [
        h
        for h in search(db, sentence, k=10, mode="hybrid", explain=True)
        if "file_rankings" in h.why
    ]
    assert lifted and all(h.why["file_rankings"].startswith("+") for h in lifted)
    assert lifted[0].path.endswith("RateCounter.java")  # constructor and `record` lead
    monkeypatch.setattr(rerank, "FILE_EVIDENCE_KINDS", frozenset())
    for (query, mode), hits in with_evidence.items():
        if mode == "hybrid" and query == sentence:
            assert run(query, mode) != hits
        else:
            assert run(query, mode) == hits
