"""Retrieval quality on real code: does a function's own doc summary find the function?

For Python (CPython stdlib), Go (Go 1.19 stdlib), JavaScript (npm's own sources) and Java
(OpenJDK 17 `java.util`, the top-level package, from the openjdk-17-source Debian package the
search eval pins; `--languages python,go,javascript,java`), a seeded sample of files is copied
with every function's docstring / doc comment removed.
The stripped tree is indexed with indexer_core (chunk_partition + embed_partition, no
Dagster), and the first sentence of each removed doc is a query whose answer is its
function. Scoring rule, the same for every system (see HIT_RULE): each system returns its
top 10; results of one file whose ranges overlap by at least half of the smaller range are
duplicates and only the first is kept; a result is a hit when it is in the function's file
and the overlap of the two line ranges is at least half of the smaller of the two (so a big
window merely touching the function does not count, nor does a function merely touching it).
Go doc comments start with the function's own name by convention; that leading name is
dropped from the query so the query does not simply spell out the answer.

Compared in one run: vector, text and hybrid search, and a naive baseline of fixed
40-line windows embedded with the same model and the same header our chunks get (path,
language, scope "(top level)"), scored by brute-force cosine. Windows longer than the
model's token limit are truncated by the model, as our chunks would be if they were longer. Reports
recall@1,
recall@10 and MRR@10 per language; prints and writes JSON under bench/results/.

    python bench/retrieval_eval.py [--files 30] [--queries 150] [--seed 7]
    python bench/retrieval_eval.py --languages python --under python=email   # CPython `email`
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from indexer_core.chunking.header import embed_text, format_header
from indexer_core.embedding.model import load_embedder
from indexer_core.indexing.chunk_step import chunk_partition
from indexer_core.indexing.embed_step import embed_partition
from indexer_core.indexing.settings import IndexSettings
from indexer_core.search import indexes as search_index
from indexer_core.search.filters import SearchFilters
from indexer_core.search.query import search

WINDOW = 40
MODES = ("vector", "text", "hybrid")
MIN_OVERLAP = 0.5
HIT_RULE = (
    "top 10 per system; same-file results overlapping an earlier one by >= 50% of the smaller "
    "range are dropped as duplicates; hit = same file and line overlap >= 50% of the smaller of "
    "(result range, function range)"
)


@dataclass
class Query:
    text: str
    path: str
    start: int  # 1-based, inclusive, in the stripped file
    end: int


def first_sentence(doc: str) -> str:
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return (match.group(1) if match else paragraph).strip()


def _strip_lines(lines: list[str], removed: set[int], spans: list[tuple[str, int, int]]):
    """Drop 1-based line numbers in `removed`; remap (query, start, end) spans to the new text."""
    new_number, kept = {}, []
    for number, line in enumerate(lines, 1):
        if number not in removed:
            kept.append(line)
            new_number[number] = len(kept)

    def remap(n: int, step: int) -> int:
        while n not in new_number:
            n += step
        return new_number[n]

    return kept, [(q, remap(s, 1), remap(e, -1)) for q, s, e in spans]


# ---------------------------------------------------------------- per-language stripping


def strip_python(text: str):
    tree = ast.parse(text)
    lines = text.split("\n")
    removed: set[int] = set()
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node)
        body = node.body
        if not doc or len(body) < 2 or not isinstance(body[0], ast.Expr):
            continue
        first, last = body[0].lineno, body[0].end_lineno
        if (
            lines[first - 1].strip()[:3] not in ('"""', "'''", 'r""', "r''")
            or body[1].lineno <= last
        ):
            continue
        removed.update(range(first, last + 1))
        spans.append((first_sentence(doc), node.lineno, node.end_lineno))
    return _strip_lines(lines, removed, spans)


_GO_FUNC = re.compile(r"^func (?:\([^)]*\)\s*)?([A-Za-z_]\w*)")


def strip_go(text: str):
    lines = text.split("\n")
    removed: set[int] = set()
    spans = []
    for i, line in enumerate(lines):
        match = _GO_FUNC.match(line)
        if not match or not line.rstrip().endswith("{"):
            continue
        j = i - 1
        while j >= 0 and lines[j].startswith("//"):
            j -= 1
        if j == i - 1:
            continue
        end = next((k for k in range(i + 1, len(lines)) if lines[k] == "}"), None)
        if end is None:
            continue
        doc = "\n".join(ln[2:].strip() for ln in lines[j + 1 : i])
        sentence = first_sentence(doc)
        words = sentence.split()
        if words and words[0] == match.group(1):
            sentence = " ".join(words[1:])
        removed.update(range(j + 2, i + 1))
        spans.append((sentence, i + 1, end + 1))
    return _strip_lines(lines, removed, spans)


_JS_FUNC = re.compile(
    r"^\s*(?:export\s+)?(?:(?:async\s+)?function\s*\*?\s*(\w+)|(?:const|let|var)\s+(\w+)\s*=\s*(?:async\s*)?"
    r"(?:function|\([^)]*\)\s*=>|\w+\s*=>)|(?:static\s+)?(?:async\s+)?(?!if\b|for\b|while\b|switch\b)(\w+)\s*\([^)]*\)\s*\{)"
)


def strip_js(text: str):
    lines = text.split("\n")
    removed: set[int] = set()
    spans = []
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith("/**"):
            j = i
            while j < len(lines) and "*/" not in lines[j]:
                j += 1
            k = j + 1
            if k < len(lines) and _JS_FUNC.match(lines[k]):
                end = _brace_end(lines, k)
                doc_lines = [
                    re.sub(r"^\s*/?\*+/?\s?", "", ln).replace("*/", "") for ln in lines[i : j + 1]
                ]
                doc = "\n".join(ln for ln in doc_lines if not ln.strip().startswith("@"))
                if end is not None and doc.strip():
                    removed.update(range(i + 1, j + 2))
                    spans.append((first_sentence(doc), k + 1, end + 1))
            i = j + 1
            continue
        i += 1
    return _strip_lines(lines, removed, spans)


def _brace_end(lines: list[str], start: int) -> int | None:
    depth, seen = 0, False
    for k in range(start, min(len(lines), start + 400)):
        for ch in lines[k]:
            if ch == "{":
                depth, seen = depth + 1, True
            elif ch == "}":
                depth -= 1
                if seen and depth == 0:
                    return k
    return None


_JAVA_DECL = re.compile(
    r"^\s*(?:(?:public|protected|private|static|final|abstract|synchronized|native|default"
    r"|strictfp)\s+)*(?:<[^>]*>\s+)?[\w.<>\[\], ?]+?\s+(\w+)\s*\("
)
_JAVA_NOT_METHOD = re.compile(r"\b(class|interface|enum|record|new|return|throw)\b")


def _javadoc_text(lines: list[str]) -> str:
    """A Javadoc block's prose: `{@code x}` and `{@link a#b c}` as their words, no HTML."""
    text = "\n".join(re.sub(r"^\s*/?\*+/?\s?", "", ln).replace("*/", "") for ln in lines)
    text = re.sub(r"\{@(?:code|literal)\s+([^}]*)\}", r"\1", text)
    link = r"\{@(?:link|linkplain)\s+([\w.$]*(?:#\w+)?(?:\([^)]*\))?)\s*([^}]*)\}"
    text = re.sub(link, lambda m: m.group(2).strip() or m.group(1), text)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    text = re.sub(r"(?<![\w#])#(?=\w)", "", text)  # `{@link #get}` -> get
    return "\n".join(ln for ln in text.split("\n") if not ln.strip().startswith("@"))


def strip_java(text: str):
    """Javadoc blocks directly above a method or constructor with a body (annotations
    between them allowed); the method's span runs from its declaration to its closing brace."""
    lines = text.split("\n")
    removed: set[int] = set()
    spans = []
    i = 0
    while i < len(lines):
        if not lines[i].strip().startswith("/**"):
            i += 1
            continue
        j = i
        while j < len(lines) and "*/" not in lines[j]:
            j += 1
        k = j + 1
        while k < len(lines) and lines[k].strip().startswith("@"):
            k += 1
        if (
            k < len(lines)
            and _JAVA_DECL.match(lines[k])
            and not _JAVA_NOT_METHOD.search(lines[k].split("(")[0])
        ):
            body = next(
                (m for m in range(k, min(len(lines), k + 8)) if "{" in lines[m] or ";" in lines[m]),
                None,
            )
            end = _brace_end(lines, k) if body is not None and "{" in lines[body] else None
            doc = _javadoc_text(lines[i : j + 1])
            if end is not None and doc.strip():
                removed.update(range(i + 1, j + 2))
                spans.append((first_sentence(doc), k + 1, end + 1))
        i = j + 1
    return _strip_lines(lines, removed, spans)


def python_files() -> list[Path]:
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    return [
        p
        for p in root.rglob("*.py")
        if "site-packages" not in p.parts
        and "test" not in p.parts
        and "tests" not in p.parts
        and "idlelib" not in p.parts
    ], root


def go_files() -> tuple[list[Path], Path]:
    root = Path("/usr/share/go-1.19/src")
    if not root.is_dir():
        raise SystemExit("Go sources missing: apt-get install -y golang-1.19-src")
    return [
        p
        for p in root.rglob("*.go")
        if "testdata" not in p.parts and not p.name.endswith("_test.go") and "vendor" not in p.parts
    ], root


def js_files() -> tuple[list[Path], Path]:
    root = Path("/usr/lib/node_modules/npm")
    return [p for p in root.rglob("*.js") if "test" not in p.parts], root


# OpenJDK's sources: the Debian package the search eval pins (bench/search_eval/repos.toml),
# fetched with `apt-get download` and unpacked without installing (no root needed).
JDK_SOURCE = "openjdk-17-source=17.0.19+10-1~deb12u2"
JDK_PREFIX = "java.base/java/util/"
SOURCE_CACHE = Path(tempfile.gettempdir()) / "retrieval-eval-src"


def java_files() -> tuple[list[Path], Path]:
    """The top-level `java.util` package (not its subpackages)."""
    from bench.search_eval import prepare

    repo = prepare.Repo(
        name="openjdk-java-util",
        language="java",
        fetch={
            "apt_source_zip": JDK_SOURCE,
            "zip": "/usr/lib/jvm/openjdk-17/lib/src.zip",
            "member_prefix": JDK_PREFIX,
        },
        include=["*.java"],
    )
    root = prepare.fetch(repo, SOURCE_CACHE)
    return sorted(root.glob("*.java")), root


LANGUAGES = {
    "python": (python_files, strip_python),
    "go": (go_files, strip_go),
    "javascript": (js_files, strip_js),
    "java": (java_files, strip_java),
}


def build_tree(
    language: str,
    out: Path,
    n_files: int,
    n_queries: int,
    rng: random.Random,
    under: str | None = None,
) -> list[Query]:
    """Copy a sample of files with docs stripped; return the queries (at most n_queries).
    `under`: only files below this directory of the language's root (`email`)."""
    list_files, strip = LANGUAGES[language]
    files, root = list_files()
    if under:
        files = [
            p
            for p in files
            if p.relative_to(root).parts[: len(Path(under).parts)] == Path(under).parts
        ]
    files = sorted(p for p in files if 2_000 < p.stat().st_size < 60_000)
    rng.shuffle(files)
    queries: list[Query] = []
    used = 0
    for path in files:
        if used >= n_files:
            break
        try:
            text = path.read_text(encoding="utf-8")
            kept, spans = strip(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        spans = [s for s in spans if len(s[0].split()) >= 4]
        if len(spans) < 3:
            continue
        rel = str(path.relative_to(root))
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(kept), encoding="utf-8")
        queries += [Query(q, rel, s, e) for q, s, e in spans]
        used += 1
    rng.shuffle(queries)
    return queries[:n_queries]


# ---------------------------------------------------------------- scoring


Span = tuple[str, int, int]  # path, first line, last line (1-based, inclusive)


def _overlap(a: Span, b: Span) -> float:
    """Overlapping lines of two spans as a share of the smaller span (0 when in other files)."""
    if a[0] != b[0]:
        return 0.0
    lines = min(a[2], b[2]) - max(a[1], b[1]) + 1
    smaller = min(a[2] - a[1], b[2] - b[1]) + 1
    return max(0, lines) / max(1, smaller)


def dedupe(results: list[Span]) -> list[Span]:
    """Drop results that mostly repeat an earlier result's lines (same rule for every system)."""
    kept: list[Span] = []
    for span in results:
        if all(_overlap(span, seen) < MIN_OVERLAP for seen in kept):
            kept.append(span)
    return kept


def rank_of_hit(results: list[Span], query: Query) -> int | None:
    target = (query.path, query.start, query.end)
    for rank, span in enumerate(dedupe(results[:10]), 1):
        if _overlap(span, target) >= MIN_OVERLAP:
            return rank
    return None


def metrics(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    return {
        "recall@1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "recall@10": round(sum(1 for r in ranks if r is not None) / n, 4),
        "mrr@10": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
    }


class CachedQueries:
    """The index's embedder with query vectors computed once, in one batch."""

    def __init__(self, embedder, texts: list[str]) -> None:
        self.model_name, self.dim, self._embedder = embedder.model_name, embedder.dim, embedder
        self._cache = dict(zip(texts, embedder.encode(texts)))

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack(
            [
                self._cache.get(t) if t in self._cache else self._embedder.encode([t])[0]
                for t in texts
            ]
        )


def window_baseline(
    tree: Path,
    language: str,
    queries: list[Query],
    embedder,
    query_vectors: np.ndarray,
    cache: Path,
) -> tuple[list[int | None], int]:
    """Fixed 40-line windows with our header, embedded once per work dir (cached by content)."""
    import hashlib

    windows: list[Span] = []
    texts: list[str] = []
    for path in sorted(tree.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(tree))
        lines = path.read_text(encoding="utf-8").split("\n")
        for start in range(0, len(lines), WINDOW):
            chunk = "\n".join(lines[start : start + WINDOW])
            if chunk.strip():
                windows.append((rel, start + 1, min(len(lines), start + WINDOW)))
                texts.append(embed_text(format_header(rel, language, []), chunk))
    digest = hashlib.sha256("\0".join([embedder.model_name, *texts]).encode()).hexdigest()[:16]
    cached = cache / f"windows-{digest}.npy"
    if cached.exists():
        vectors = np.load(cached)
    else:
        vectors = embedder.encode(texts)
        np.save(cached, vectors)
    scores = query_vectors @ vectors.T
    ranks = []
    for qi, query in enumerate(queries):
        top = np.argsort(-scores[qi])[:10]
        ranks.append(rank_of_hit([windows[i] for i in top], query))
    return ranks, len(windows)


def evaluate(language: str, work: Path, args, embedder) -> dict:
    rng = random.Random(args.seed)
    tree = work / language / "tree"
    db_uri = str(work / language / "lancedb")
    t0 = time.perf_counter()
    if tree.exists():  # a kept work dir: rebuild the same sample so line numbers match
        import shutil

        shutil.rmtree(tree)
    queries = build_tree(
        language, tree, args.files, args.queries, rng, dict(args.under).get(language)
    )
    settings = IndexSettings(shards=1, use_git=False, model=embedder.model_name)
    chunked = chunk_partition(db_uri, language, str(tree), 0, settings)
    embed_partition(db_uri, language, 0, embedder)
    search_index.build_fts_indexes(db_uri)
    index_seconds = time.perf_counter() - t0
    cached = CachedQueries(embedder, [q.text for q in queries])
    result: dict = {
        "queries": len(queries),
        "files": chunked.files,
        "chunks": chunked.chunks_total,
        "index_seconds": round(index_seconds, 1),
    }
    for mode in MODES:
        ranks = []
        for query in queries:
            hits = search(
                db_uri,
                query.text,
                k=10,
                mode=mode,
                embedder=cached,
                filters=SearchFilters(repo=language),
            )
            ranks.append(rank_of_hit([(h.path, h.start_line, h.end_line) for h in hits], query))
        result[mode] = metrics(ranks)
    query_vectors = np.stack([cached.encode([q.text])[0] for q in queries])
    ranks, n_windows = window_baseline(
        tree, language, queries, embedder, query_vectors, work / language
    )
    result["window40"] = metrics(ranks)
    result["windows"] = n_windows
    result["hybrid_minus_window40_recall@10"] = round(
        result["hybrid"]["recall@10"] - result["window40"]["recall@10"], 4
    )
    result["examples"] = [q.text for q in queries[:3]]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=30, help="files sampled per language")
    parser.add_argument("--queries", type=int, default=150, help="queries kept per language")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument(
        "--under",
        action="append",
        default=[],
        type=lambda v: tuple(v.split("=", 1)),
        metavar="LANG=DIR",
        help="sample only files below DIR of that language's root (python=email)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON here (default bench/results)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument(
        "--work", help="keep the stripped trees and indexes here; a rerun reuses them"
    )
    args = parser.parse_args()
    embedder = load_embedder(args.model)
    report = {
        "model": args.model,
        "device": embedder.device,
        "seed": args.seed,
        "files_per_language": args.files,
        "under": dict(args.under),
        "window_lines": WINDOW,
        "hit_rule": HIT_RULE,
        "languages": {},
    }
    print(f"hit rule: {HIT_RULE}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="retrieval-eval-") as tmp:
        tmp = args.work or tmp
        for language in args.languages.split(","):
            res = evaluate(language, Path(tmp), args, embedder)
            report["languages"][language] = res
            print(
                f"\n{language}: {res['queries']} queries, {res['files']} files, {res['chunks']} "
                f"chunks, "
                f"{res['windows']} windows (indexed in {res['index_seconds']}s)",
                flush=True,
            )
            for mode in (*MODES, "window40"):
                m = res[mode]
                print(
                    f"  {mode:<9} recall@1 {m['recall@1']:.3f}  recall@10 {m['recall@10']:.3f}  "
                    f"mrr@10 {m['mrr@10']:.3f}",
                    flush=True,
                )
            print(f"  hybrid - window40 recall@10: {res['hybrid_minus_window40_recall@10']:+.3f}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or Path(__file__).parent / "results" / "retrieval_eval.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out} ({report['seconds']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
