"""`python -m bench run NAME --corpus CORPUS [--out bench/results]` (see bench/README.md)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import corpora, machine, results

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

Section = Callable[[argparse.Namespace, corpora.Corpus, Path], dict]


def _chunking(args, corpus, out) -> dict:
    from bench import chunking

    return chunking.run(corpus, args.workers, args.max_mb)


def _embedding(args, corpus, out) -> dict:
    from bench import embedding

    return embedding.run(corpus, args.texts, device=args.device)


def _write(args, corpus, out) -> dict:
    from bench import embedding, write

    return write.run(embedding.sample_chunks(corpus, args.texts * 8))


def _e2e(args, corpus, out) -> dict:
    from bench import e2e

    png = out / f"{args.stem}_timeline.png"
    return e2e.run(
        corpus, args.workdir / "e2e", args.workers, args.shards, args.e2e_mb, picture=png
    )


def _scaling(args, corpus, out) -> dict:
    from bench import chunking, e2e

    data: dict = {"e2e_mb_all": args.e2e_mb}
    for fraction in (0.125, 0.25, 0.5, 1.0):
        run = e2e.run(
            corpus,
            args.workdir / f"scale_{fraction}",
            args.workers,
            args.shards,
            args.e2e_mb,
            fraction=fraction,
            limits=False,
        )
        mem = run["memory"]
        data[f"e2e_{fraction}"] = {
            "mb": run["mb"],
            "files": run["files"],
            "chunks": run["chunks"],
            "wall_seconds": run["wall_seconds"],
            "peak_total_rss_mb": mem["peak_total_rss_mb"],
            "peak_process_rss_mb": mem["peak_process_rss_mb"],
            "processes": mem["processes"],
        }
    files = corpora.take(corpus.files(), max_bytes=int(args.max_mb * 1e6) if args.max_mb else None)
    root = str(corpus.root)
    paths = chunking.largest_first(root, [f.path for f in files])
    for workers in range(1, args.workers + 1):
        data[f"chunk_workers_{workers}"] = chunking.chunk_corpus(
            root, paths, workers, measure=False
        )
    data["summary"] = {
        **{f"e2e_wall_s_at_{f}": data[f"e2e_{f}"]["wall_seconds"] for f in (0.125, 0.25, 0.5, 1.0)},
        **{
            f"e2e_peak_total_rss_mb_at_{f}": data[f"e2e_{f}"]["peak_total_rss_mb"]
            for f in (0.125, 0.25, 0.5, 1.0)
        },
        **{
            f"chunk_mb_per_s_{w}_workers": data[f"chunk_workers_{w}"]["mb_per_s_overall"]
            for w in range(1, args.workers + 1)
        },
    }
    return data


SECTIONS: dict[str, list[tuple[str, Section]]] = {
    "chunking": [("chunking", _chunking)],
    "embedding": [("embedding", _embedding)],
    "write": [("write", _write)],
    "e2e": [("e2e", _e2e)],
    "scaling": [("scaling", _scaling)],
    # The 15-minute report on 2 cores: full-corpus chunking plus end to end on a slice.
    "report": [("chunking", _chunking), ("e2e", _e2e)],
    # The lent GPU machine (bench/gpu_check.sh): bare encode, then the pipeline end to end.
    "gpu": [("embedding", _embedding), ("e2e", _e2e)],
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a named benchmark on a named corpus")
    run.add_argument("name", choices=sorted(SECTIONS))
    run.add_argument(
        "--corpus",
        required=True,
        help="cpython, go, linux, typescript, site-packages or a directory",
    )
    run.add_argument("--out", type=Path, default=Path("bench/results"))
    run.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="chunking processes (default: cores)",
    )
    run.add_argument("--shards", type=int, default=8, help="partitions of the end-to-end run")
    run.add_argument(
        "--max-mb",
        type=float,
        default=None,
        help="chunking/scaling: first MB of the corpus (stable order)",
    )
    run.add_argument(
        "--e2e-mb",
        type=float,
        default=3.0,
        help="end to end: MB of the corpus slice (0: all); 3 MB takes about 3 minutes on 2 cores",
    )
    run.add_argument("--texts", type=int, default=512, help="embedding: distinct chunk texts")
    run.add_argument("--device", default="auto")
    run.add_argument(
        "--workdir", type=Path, default=None, help="where slices, tables and DAGSTER_HOME go"
    )
    run.add_argument("--stem", default=None, help="result file names (default: NAME_CORPUS)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    corpus = corpora.resolve(args.corpus)
    args.e2e_mb = args.e2e_mb or None
    args.stem = args.stem or f"{args.name}_{corpus.name}"
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-"))
    args.out.mkdir(
        parents=True, exist_ok=True
    )  # sections write pictures there before results.write
    info = machine.describe()
    result: dict = {
        "bench": args.name,
        "corpus": corpus.name,
        "corpus_root": str(corpus.root),
        "machine": info,
        "machine_line": machine.one_line(info),
        "date": results.stamp(),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "sections": {},
    }
    print(
        f"bench {args.name} on {corpus.name} ({corpus.root}); {result['machine_line']}", flush=True
    )
    start = time.perf_counter()
    for title, section in SECTIONS[args.name]:
        t0 = time.perf_counter()
        try:
            result["sections"][title] = section(args, corpus, args.out)
        except Exception as exc:  # noqa: BLE001 - keep what the other sections measured
            import traceback

            traceback.print_exc()
            result["sections"][title] = f"FAILED: {type(exc).__name__}: {exc}"
        result["seconds"] = round(time.perf_counter() - start, 1)
        json_path, md_path = results.write(
            result, args.out, args.stem
        )  # after each: partial results land
        summary = result["sections"][title]
        print(
            f"[{title}] {time.perf_counter() - t0:.1f}s",
            summary.get("summary", "") if isinstance(summary, dict) else summary,
            flush=True,
        )
    print(f"wrote {json_path} and {md_path}")
    failed = [t for t, s in result["sections"].items() if not isinstance(s, dict)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
