"""What a one-file edit costs through `code-index index`: its steps in the command's own
process (the default for a small change) against the step server's processes, alternated.

    python -m bench.small_change --tree DIR [--rounds 4] [--out FILE]

Copies the tree, indexes the copy once (not timed), then each round appends a small function
to one source file and runs `code-index index` (not forced: the change detection finds the
one stale shard), first with the defaults (the run's steps in its own process: the edit is
far under `CODE_INDEX_IN_PROCESS_BYTES`), then after another edit of the same file with
`CODE_INDEX_IN_PROCESS_BYTES=0` (the step server and its step processes). Both sides share
the index and the Dagster home, so each run does the same work: re-chunk one file, embed its
one new chunk. Each run's wall is split as `bench.fixed_cost` splits it. Prefix with
`flock /tmp/cpu.lock` where others measure on the same machine. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.fixed_cost import emit, faster_rounds, index_once, per_side

PROJECT = Path(__file__).resolve().parents[1]
SIDES = {"in_process": {}, "step_processes": {"CODE_INDEX_IN_PROCESS_BYTES": "0"}}
SOURCE_SUFFIXES = (".py", ".go", ".rs", ".js", ".ts", ".java", ".c", ".rb")


def file_to_edit(tree: Path) -> Path:
    """The tree's largest source file: the edit re-chunks all of it."""
    sources = [p for p in tree.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES]
    if not sources:
        raise SystemExit(f"no source file ({', '.join(SOURCE_SUFFIXES)}) under {tree}")
    return max(sources, key=lambda p: (p.stat().st_size, str(p)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True, help="a directory to index")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-small-change-") as tmp:
        work = Path(tmp)
        repo = work / "tree"
        shutil.copytree(args.tree, repo, symlinks=True)
        edited = file_to_edit(repo)
        setup = index_once(PROJECT, repo, work / "home", force=False)
        print("setup", json.dumps(setup), flush=True)
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
        edits = 0
        for _ in range(args.rounds):
            for side, settings in SIDES.items():
                edits += 1
                with edited.open("a", encoding="utf-8") as f:
                    f.write(f"\n\ndef bench_small_change_{edits}(value):\n    return value\n")
                runs[side].append(index_once(PROJECT, repo, work / "home", settings, force=False))
                print(side, json.dumps(runs[side][-1]), flush=True)
        edited_bytes = edited.stat().st_size
    result = {
        "command": "python -m bench.small_change " + " ".join(argv or sys.argv[1:]),
        "tree": str(args.tree),
        "edited_file": str(edited.relative_to(repo)),
        "edited_file_bytes": edited_bytes,
        "full_index": setup,
        "runs": runs,
        "medians": per_side(runs),
        "in_process_faster_rounds": faster_rounds(runs["in_process"], runs["step_processes"]),
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
