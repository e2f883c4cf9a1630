"""Search quality on hand-judged queries over pinned real repositories.

    python -m bench.search_eval [--repos a,b] [--work /tmp/search-eval] [--out bench/results]

Prepares every repository of repos.toml (fetch, blank doc comments, check the queries' spans;
see prepare.py), indexes each prepared copy in-process into its own LanceDB directory
(work/db/<name>; a rerun re-chunks and re-embeds nothing that did not change), then runs every
query of queries/<name>.jsonl in five modes, top 10: the project's hybrid, vector and text
search, plain BM25 (LanceDB's full-text search alone over the chunks' content) and plain cosine
(LanceDB's vector search alone over the chunks' embeddings; adapter.py).
Reports NDCG@10, recall@10, MRR@10 (file level) and span recall@10 (scoring.py) per language,
per query type and averaged over languages; writes <out>/search_eval.json and .md, and copies
the markdown to bench/reports/search_eval.md when every repository was run (or to --report).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.search_eval import prepare, scoring

MODES = ("hybrid", "vector", "text", "bm25", "cosine")
MODE_NOTES = {
    "hybrid": "project search, fused vector + BM25 + name rankings",
    "vector": "project search, cosine over chunk embeddings",
    "text": (
        "project search, BM25 over search_text (path, scope, name, content; camelCase split; "
        "query expanded)"
    ),
    "bm25": (
        "LanceDB FTS alone over chunk content, raw query, no name ranking, fusion or part merging"
    ),
    "cosine": (
        "LanceDB vector search alone over chunk embeddings, the query embedded as vector mode "
        "embeds it, nearest chunks as they come: no part merging or ranking stage (vector mode "
        "minus the ranking stage, the counterpart of bm25)"
    ),
}
DEFAULT_REPORT = ROOT / "bench" / "reports" / "search_eval.md"


def run_queries(
    adapter, db_uri: str, queries: list[dict], embedder, k: int
) -> tuple[list[dict], dict]:
    rows, seconds = [], {m: 0.0 for m in MODES}
    for q in queries:
        row = {"id": q["id"], "type": q["type"], "query": q["query"], "modes": {}}
        for mode in MODES:
            t0 = time.perf_counter()
            if mode == "bm25":
                results = adapter.plain_bm25(db_uri, q["query"], k)
            elif mode == "cosine":
                results = adapter.plain_vector(db_uri, q["query"], k, embedder)
            else:
                results = adapter.search(db_uri, q["query"], mode, k, embedder)
            seconds[mode] += time.perf_counter() - t0
            row["modes"][mode] = {
                **{m: round(v, 4) for m, v in scoring.score(results, q["relevant"], k).items()},
                "top": [f"{p}:{s}-{e}" for p, s, e in results],
            }
        rows.append(row)
    return rows, {m: round(s, 1) for m, s in seconds.items()}


def aggregate(
    per_query: dict[str, list[dict]],
    languages: dict[str, str],
    splits: dict[str, str] | None = None,
) -> dict:
    """Means per language, per language and type, per type, over languages (macro) and over
    the languages of each split (dev: tuned on; held-out: not)."""
    by_lang: dict[str, list[dict]] = {}
    for repo, rows in per_query.items():
        by_lang.setdefault(languages[repo], []).extend(rows)
    out: dict = {
        "by_language": {},
        "by_language_type": {},
        "by_type": {},
        "over_languages": {},
        "all_queries": {},
        "by_split": {},
    }
    lang_split = {languages[repo]: (splits or {}).get(repo, "held-out") for repo in per_query}
    for mode in MODES:

        def metrics(rows, mode=mode):
            return scoring.mean([r["modes"][mode] for r in rows])

        lang_means = {lang: metrics(rows) for lang, rows in sorted(by_lang.items())}
        lang_type = {
            lang: {
                t: metrics([r for r in rows if r["type"] == t])
                for t in prepare.QUERY_TYPES
                if any(r["type"] == t for r in rows)
            }
            for lang, rows in sorted(by_lang.items())
        }
        by_type = {
            t: scoring.mean([lt[t] for lt in lang_type.values() if t in lt])
            for t in prepare.QUERY_TYPES
        }
        rnd = lambda d: {k: round(v, 4) for k, v in d.items()}
        out["by_language"][mode] = {lang: rnd(v) for lang, v in lang_means.items()}
        out["by_language_type"][mode] = {
            lang: {t: rnd(v) for t, v in d.items()} for lang, d in lang_type.items()
        }
        out["by_type"][mode] = {t: rnd(v) for t, v in by_type.items()}
        out["over_languages"][mode] = rnd(scoring.mean(list(lang_means.values())))
        out["all_queries"][mode] = rnd(metrics([r for rows in by_lang.values() for r in rows]))
        out["by_split"][mode] = {
            split: rnd(
                scoring.mean([v for lang, v in lang_means.items() if lang_split[lang] == split])
            )
            for split in sorted(set(lang_split.values()))
        }
    return out


def markdown(report: dict) -> str:
    agg = report["metrics"]
    langs = list(agg["by_language"]["hybrid"])
    lines = [
        "# Search evaluation: hand-judged queries on real repositories",
        "",
        f"Command: `{report['command']}`  ",
        f"Commit: {report['commit']}, {report['date']}  ",
        f"Machine: {report['machine']}  ",
        (
            f"Model: {report['model']} on {report['device']}; top {report['k']}; "
            f"{report['queries']} queries over {len(report['repos'])} repositories, "
            f"{len(langs)} languages.  "
        ),
        (
            f"Times: prepare {report['seconds']['prepare']} s, "
            f"model load {report['seconds']['model']} s, "
            f"indexing {report['seconds']['index']} s, queries {report['seconds']['queries']} s, "
            f"total {report['seconds']['total']} s."
        ),
        "",
        (
            "| repository | language | source | files | chunks | queries (sem / arch / sym) "
            "| index s (chunk + embed + search indexes) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["repos"].items():
        src = ", ".join(f"{k} {v}" for k, v in r["fetch"].items() if k != "path")
        types = " / ".join(str(r["query_types"].get(t, 0)) for t in prepare.QUERY_TYPES)
        ix = r["index"]
        lines.append(
            f"| {name} | {r['language']} | {src} | {ix['files']} | {ix['chunks']} "
            f"| {r['queries']} ({types}) | "
            f"{ix['chunk_seconds']} + {ix['embed_seconds']} + {ix['search_index_seconds']} |"
        )
    lines += [
        "",
        "Modes: " + "; ".join(f"**{m}**: {MODE_NOTES[m]}" for m in MODES) + ".",
        "",
        f"Scoring: {report['rules']}.",
        "",
    ]
    names = {
        "ndcg@10": "NDCG@10 (file level)",
        "recall@10": "recall@10 (file level)",
        "mrr@10": "MRR@10 (first judged file)",
        "span_recall@10": "span recall@10",
    }
    for metric in scoring.METRICS:
        lines += [
            f"## {names[metric]}",
            "",
            "| | " + " | ".join(MODES) + " |",
            "|---" * (len(MODES) + 1) + "|",
        ]
        rows = [(lang, agg["by_language"], lang) for lang in langs]
        rows.append(("**mean over languages**", agg["over_languages"], None))
        rows += [
            (f"{split} languages (mean)", {m: agg["by_split"][m] for m in MODES}, split)
            for split in agg["by_split"]["hybrid"]
        ]
        rows += [(f"{t} (mean over languages)", agg["by_type"], t) for t in prepare.QUERY_TYPES]
        for label, table, key in rows:
            values = [table[m][key][metric] if key else table[m][metric] for m in MODES]
            if any(math.isnan(v) for v in values):  # no query of this type
                continue
            best = max(values)
            cells = [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in values]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Lines per result",
        "",
        (
            "Mean lines of a returned hit. Span recall credits a hit that covers at least half "
            "of a judged "
            "span, so long hits raise it."
        ),
        "",
        "| language | " + " | ".join(MODES) + " |",
        "|---" * (len(MODES) + 1) + "|",
    ]
    for lang in langs:
        lines.append(
            f"| {lang} | "
            + " | ".join(f"{report['result_lines'][lang][m]:.0f}" for m in MODES)
            + " |"
        )
    lines.append("")
    lines += [
        "## NDCG@10 by language and query type",
        "",
        "| language | type | " + " | ".join(MODES) + " |",
        "|---|---" + "|---" * len(MODES) + "|",
    ]
    for lang in langs:
        for t in prepare.QUERY_TYPES:
            if t in agg["by_language_type"]["hybrid"][lang]:
                values = [agg["by_language_type"][m][lang][t]["ndcg@10"] for m in MODES]
                lines.append(f"| {lang} | {t} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repos", help="comma-separated names from repos.toml (default: all)")
    parser.add_argument(
        "--work",
        type=Path,
        default=prepare.DEFAULT_CACHE.parent,
        help="sources (src/), prepared copies (prepared/) and indexes (db/)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--report",
        type=Path,
        help=f"also copy the markdown here (default {DEFAULT_REPORT} when every repository ran)",
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("-k", type=int, default=scoring.K)
    args = parser.parse_args()
    command = "python -m bench.search_eval " + " ".join(sys.argv[1:])
    started = time.perf_counter()

    from bench.search_eval import adapter

    repos = prepare.load_repos(names=args.repos.split(",") if args.repos else None)
    t0 = time.perf_counter()
    prepared = prepare.prepare_all(repos, args.work / "src", args.work / "prepared")
    seconds = {"prepare": round(time.perf_counter() - t0, 1)}
    t0 = time.perf_counter()
    embedder = adapter.load_embedder(args.model)
    seconds["model"] = round(time.perf_counter() - t0, 1)
    seconds["index"] = seconds["queries"] = 0.0
    per_query, repo_info = {}, {}
    for repo in repos:
        queries = prepare.load_queries(repo.name)
        db_uri = str(args.work / "db" / repo.name)
        t0 = time.perf_counter()
        index = adapter.index_tree(
            db_uri, repo.name, str(args.work / "prepared" / repo.name), embedder
        )
        seconds["index"] += time.perf_counter() - t0
        print(f"{repo.name}: indexed {index}", flush=True)
        t0 = time.perf_counter()
        rows, mode_seconds = run_queries(adapter, db_uri, queries, embedder, args.k)
        seconds["queries"] += time.perf_counter() - t0
        per_query[repo.name] = rows
        repo_info[repo.name] = {
            "language": repo.language,
            "fetch": repo.fetch,
            "include": repo.include,
            "exclude": repo.exclude,
            "prepared": prepared[repo.name],
            "index": index,
            "queries": len(queries),
            "query_types": {
                t: sum(1 for q in queries if q["type"] == t) for t in prepare.QUERY_TYPES
            },
            "query_seconds": mode_seconds,
        }
        means = {m: scoring.mean([r["modes"][m] for r in rows]) for m in MODES}
        print(
            f"{repo.name}: "
            + "  ".join(
                f"{m} ndcg {v['ndcg@10']:.3f} r@10 {v['recall@10']:.3f}" for m, v in means.items()
            ),
            flush=True,
        )
    seconds["index"] = round(seconds["index"], 1)
    seconds["queries"] = round(seconds["queries"], 1)
    seconds["total"] = round(time.perf_counter() - started, 1)

    from bench import machine
    from bench.results import stamp

    commit = (
        subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or "unknown"
    )
    result_lines: dict[str, dict[str, float]] = {}
    for repo in repos:
        for mode in MODES:
            spans = [
                t.rsplit(":", 1)[1].split("-")
                for r in per_query[repo.name]
                for t in r["modes"][mode]["top"]
            ]
            bucket = result_lines.setdefault(repo.language, {}).setdefault(mode, [])
            bucket.extend(int(e) - int(s) + 1 for s, e in spans)
    result_lines = {
        lang: {m: round(sum(v) / max(1, len(v)), 1) for m, v in modes.items()}
        for lang, modes in sorted(result_lines.items())
    }
    report = {
        "bench": "search_eval",
        "command": command,
        "commit": commit,
        "date": stamp(),
        "machine": machine.one_line(machine.describe()),
        "model": args.model,
        "device": getattr(embedder, "device", "?"),
        "k": args.k,
        "modes": MODE_NOTES,
        "rules": scoring.RULES,
        "queries": sum(len(rows) for rows in per_query.values()),
        "seconds": seconds,
        "repos": repo_info,
        "metrics": aggregate(
            per_query, {r.name: r.language for r in repos}, {r.name: r.split for r in repos}
        ),
        "result_lines": result_lines,
        "per_query": per_query,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_eval.json").write_text(json.dumps(report, indent=1))
    md = markdown(report)
    (args.out / "search_eval.md").write_text(md)
    print("\n" + md)
    target = args.report or (DEFAULT_REPORT if not args.repos else None)
    if target:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / "search_eval.md", target)
        print(f"copied the report to {target}")
    print(f"wrote {args.out / 'search_eval.json'} and .md ({seconds['total']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
