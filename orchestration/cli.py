"""`code-index`: index a directory through the Dagster job, search it, report its state."""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _db(args) -> str:
    from orchestration import config

    return args.db or config.load().lancedb_uri


def cmd_index(args) -> int:
    if not os.path.isdir(args.path):
        print(
            f"code-index: repository path {args.path!r} does not exist or is not a directory",
            file=sys.stderr,
        )
        return 2
    from indexer_core.storage import registry
    from orchestration import config
    from orchestration.launch import runs_in_process

    # The sensor's change detection first: when nothing is stale, no Dagster run starts.
    repo = args.name or registry.name_for_path(args.path)
    settings = config.load()
    changes = None
    if not _whole_tree(args):
        from orchestration.status import pending_changes

        changes = pending_changes(_db(args), repo, args.path, settings.index_settings())
    if changes is not None and not changes.stale:
        print(f"{repo}: up to date (no file changed since the last run; --force runs anyway)")
        return 0
    if changes is None:  # every shard: forced, or a repository this index does not have yet
        return _run_index(args, repo, None, _small_tree(args.path))
    return _run_index(args, repo, sorted(changes.stale), runs_in_process(changes, settings))


def _whole_tree(args) -> bool:
    """Whether an `index` run covers every file of its tree, known without LanceDB: forced,
    or the index has no repository yet (`launch.index_is_new`)."""
    from orchestration.launch import index_is_new

    return args.force or index_is_new(_db(args))


@functools.cache
def _small_tree(path: str) -> bool:
    """Whether a run over all of `path` is small enough to run in this process (asked once:
    before the step server would start, and again when the run starts)."""
    from orchestration import config
    from orchestration.launch import tree_runs_in_process

    return tree_runs_in_process(path, config.load())


def _start_step_server() -> Path:
    """The Dagster home, and the step server started with its output (and its steps')
    going to the home's `logs/steps.log`: forked from this process once it has imported
    what both need (`launch.prewarm_step_server`). Returns that log; a no-op once started."""
    from orchestration.launch import ensure_dagster_home, prewarm_step_server, step_output_to

    log = ensure_dagster_home() / "logs" / "steps.log"
    with step_output_to(log):
        prewarm_step_server(fork_from_here=True)
    return log


def _run_index(args, repo: str, shards: list[int] | None, in_process: bool) -> int:
    from orchestration.launch import ensure_dagster_home, step_output_to

    # A small change runs in this process: no step server to start (seconds of CPU)
    log = ensure_dagster_home() / "logs" / "steps.log" if in_process else _start_step_server()
    with step_output_to(log) as terminal:
        from tqdm import tqdm

        from orchestration.runner import index_repository

        bars: dict = {}

        def progress(chunked: int, embedded: int, total: int) -> None:
            if not bars:
                for key, desc, line in (("c", "chunked ", 0), ("v", "embedded", 1)):
                    bars[key] = tqdm(
                        total=total,
                        desc=desc,
                        unit="part",
                        position=line,
                        file=terminal,
                    )
            bars["c"].update(chunked - bars["c"].n)
            bars["v"].update(embedded - bars["v"].n)

        try:
            outcome = index_repository(
                args.path,
                db_uri=_db(args),
                name=repo,
                shards=shards,
                in_process=in_process,
                on_progress=None if args.quiet else progress,  # -q: no polling for bars
            )
        finally:
            for bar in bars.values():
                bar.close()
    verdict = "succeeded" if outcome.success else "FAILED"
    print(
        f"run {outcome.run_id}: {verdict} in {outcome.seconds:.1f}s; "
        f"{len(outcome.chunked)}/{len(outcome.partitions)} partitions chunked, "
        f"{len(outcome.embedded)} embedded"
    )
    failed_checks = sorted(name for name, passed in outcome.checks.items() if not passed)
    print(
        f"checks: {len(outcome.checks) - len(failed_checks)} of {len(outcome.checks)} passed"
        + (f"; FAILED: {', '.join(failed_checks)}" if failed_checks else "")
    )
    print(f"the steps' own output: {log}")
    for failure in outcome.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    from orchestration.launch import call_warm
    from orchestration.status import summarize

    print(call_warm(summarize, _db(args)))
    return 0 if outcome.success and not failed_checks else 1


def cmd_search(args) -> int:
    from indexer_core.search.filters import SearchFilters
    from indexer_core.search.query import search
    from orchestration import config

    filters = SearchFilters(
        repo=args.repo, language=args.language, kind=args.kind, path_glob=args.path
    )
    try:
        hits = search(
            _db(args),
            args.query,
            k=args.k,
            mode=args.mode,
            filters=filters,
            model=args.model,
            min_score=args.min_score,
            query_options=config.load().query_options(),
            expand=args.expand,
            explain=args.explain,
        )
    except Exception as exc:  # noqa: BLE001 - a clear one-line error for a person or a script
        print(f"code-index: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2))
        return 0
    several_repos = len({hit.repo for hit in hits}) > 1  # then each line names its repository
    for rank, hit in enumerate(hits, 1):
        part = f" (part {hit.part}/{hit.parts})" if hit.parts > 1 else ""
        where = f"[{hit.repo}] " if several_repos else ""
        span = f"{hit.path}:{hit.start_line}-{hit.end_line}"
        print(
            f"{rank:>2}. {where}{span}  {hit.kind} {hit.name}{part}"
            # the order is the ranking stage's; `score` is the mode's own (what --min-score reads)
            f"  rank_score={hit.rank_score:.4f} score={hit.score:.4f}"
        )
        if hit.scope:
            print(f"      in {hit.scope}")
        if hit.why is not None:
            print(f"      why: {json.dumps(hit.why)}")
        for line in (hit.content if args.expand else hit.snippet()).split("\n"):
            print(f"      {line[:120]}")
    if not hits:
        print("no results")
    return 0


def cmd_status(args) -> int:
    from orchestration.status import status_report, summarize

    if args.json:
        print(json.dumps(status_report(_db(args)), indent=2))
    else:
        print(summarize(_db(args), show_skipped=args.skipped))
    return 0


def cmd_mcp(args) -> int:
    from orchestration.mcp_server import serve

    serve(_db(args), transport=args.transport)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="code-index", description=__doc__)
    parser.add_argument(
        "--db", help="LanceDB directory or URI (default: $CODE_INDEX_DB or .code-index/lancedb)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a directory through the Dagster job")
    p.add_argument("path")
    p.add_argument("--name", help="repository name (default: the directory name)")
    p.add_argument("--db", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--force", action="store_true", help="run every shard even when nothing changed")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search the index")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--mode", choices=["hybrid", "vector", "text"], default="hybrid")
    p.add_argument("--repo")
    p.add_argument("--language")
    p.add_argument("--kind")
    p.add_argument("--path", help="glob over repository-relative paths, e.g. 'src/*.py'")
    p.add_argument("--min-score", type=float)
    p.add_argument(
        "--expand", action="store_true", help="whole units (all parts of a long one), in full"
    )
    p.add_argument("--explain", action="store_true", help="why each result ranks where it does")
    p.add_argument("--model", help="model to embed the query (default: the index's)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--db", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("status", help="repositories, files, chunks, vectors, skipped files")
    p.add_argument("--json", action="store_true")
    p.add_argument("--skipped", action="store_true", help="list every skipped file with its reason")
    p.add_argument("--db", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("mcp", help="serve the index to coding agents over MCP (stdio by default)")
    p.add_argument("--transport", choices=["stdio", "sse", "streamable-http"], default="stdio")
    p.add_argument("--db", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_mcp)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from orchestration import config

    whole_tree = args.command == "index" and os.path.isdir(args.path) and _whole_tree(args)
    if whole_tree and not _small_tree(args.path):
        # Nothing to check before a forced run or a first index: the step server starts now
        # and imports the code location and LanceDB (seconds of CPU) on the other core while
        # this process imports Dagster; unless the run is small enough to need none.
        _start_step_server()
    from orchestration import scale_out

    scale_out.install(config.load())  # storage options (s3://...) before any table opens
    return args.func(args)


def run() -> None:
    """The `code-index` command: `main`, then the process ends as soon as its output is
    flushed. Python's own teardown of what an index run imports (dagster, sqlalchemy,
    lancedb, pyarrow) costs 1-2 s of CPU after every write has committed and every report
    is printed; a command has nothing left to tear down, so it skips it."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Its reader went away (`| head`): nothing is lost that it wanted, and an index run
        # has committed before it reports. The exit status of a command SIGPIPE ended.
        code = 128 + signal.SIGPIPE
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
