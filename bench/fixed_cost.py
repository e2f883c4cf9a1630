"""What a `code-index index` costs around its run, for two checkouts of this project, alternated.

    python -m bench.fixed_cost --base DIR --head DIR [--rounds 6] [--repo DIR]

Each round runs `python -m orchestration.cli index --force -q REPO` once from each checkout
(base first, then head), each in a fresh directory (fresh index and Dagster home), as a
caller that captures the output sees it. From the run's event log it splits the wall into:
- `before_run_s`: from the CLI's start to the run's first event (the CLI's imports, its
  Dagster instance, the run's creation);
- `run_s`: from the run's start event to its last event;
- `after_run_s`: from the run's last event to the CLI's exit, as its caller sees it.

The default repository is one generated file, so the run is all fixed cost. Prefix with
`flock /tmp/cpu.lock` where others measure on the same machine: these VMs' speed drifts, so
only the alternated pairs compare. Prints JSON; `--out FILE` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PHASES = ("wall_s", "before_run_s", "created_to_start_s", "run_s", "after_run_s")

_PHASES_SCRIPT = """
import json, sys
import dagster as dg
with dg.DagsterInstance.get() as instance:
    run = instance.get_runs(limit=1)[0]
    logs = instance.all_logs(run.run_id)
    start = next(
        e.timestamp for e in logs
        if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_START"
    )
    print(json.dumps({"first": logs[0].timestamp, "start": start, "last": logs[-1].timestamp}))
"""


def one_file_repo(parent: Path) -> Path:
    """A repository of one small file: indexing it is all fixed cost."""
    repo = parent / "one-file"
    repo.mkdir()
    (repo / "a.py").write_text("def f(x):\n    return x + 1\n")
    return repo


def index_once(
    checkout: Path,
    repo: Path,
    work: Path,
    settings: dict[str, str] | None = None,
    force: bool = True,
) -> dict[str, float]:
    """One index of `repo` with `checkout`'s code, forced unless `force` is False, in `work`
    (its own index and Dagster home; created when new), with `settings` (`CODE_INDEX_*`) over
    the defaults."""
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODE_INDEX_", "DAGSTER_"))}
    env.update(PYTHONPATH=str(checkout), HF_HUB_OFFLINE="1", **(settings or {}))
    command = [sys.executable, "-m", "orchestration.cli", "index", str(repo), "-q"]
    command += ["--force"] if force else []
    started = time.time()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    env["DAGSTER_HOME"] = str(work / ".code-index" / "dagster_home")
    marks = json.loads(
        subprocess.run(
            [sys.executable, "-c", _PHASES_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    return {
        "wall_s": round(ended - started, 3),
        "before_run_s": round(marks["first"] - started, 3),
        "created_to_start_s": round(marks["start"] - marks["first"], 3),
        "run_s": round(marks["last"] - marks["start"], 3),
        "after_run_s": round(ended - marks["last"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a checkout of this project")
    parser.add_argument("--head", type=Path, required=True, help="another checkout")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repo", type=Path, help="default: one generated file")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="CODE_INDEX_X=VALUE",
        help="a setting for both sides' runs (CODE_INDEX_IN_PROCESS_BYTES=0: the step server "
        "even for the one-file repository, which otherwise runs in one process)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.setting)
    with tempfile.TemporaryDirectory(prefix="bench-fixed-cost-") as tmp:
        work = Path(tmp)
        repo = args.repo or one_file_repo(work)
        sides = {"base": args.base.resolve(), "head": args.head.resolve()}
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            for side, checkout in sides.items():
                runs[side].append(index_once(checkout, repo, work / f"{side}-{round_}", settings))
                print(side, json.dumps(runs[side][-1]), flush=True)
    result = {
        "command": "python -m bench.fixed_cost " + " ".join(argv or sys.argv[1:]),
        "repo": str(args.repo or "one generated file"),
        "settings": settings,
        "checkouts": {side: _revision(path) for side, path in sides.items()},
        "runs": runs,
        "means": per_side(runs, statistics.mean),
        "head_faster_rounds": faster_rounds(runs["head"], runs["base"]),
    }
    emit(result, args.out)
    return 0


def per_side(
    runs: dict[str, list[dict[str, float]]], average: Callable = statistics.median
) -> dict[str, dict[str, float]]:
    """Each side's `average` of every phase."""
    return {
        side: {p: round(average(r[p] for r in rows), 3) for p in PHASES}
        for side, rows in runs.items()
    }


def faster_rounds(fast: list[dict[str, float]], slow: list[dict[str, float]]) -> int:
    """In how many rounds `fast`'s run took less wall than `slow`'s."""
    return sum(f["wall_s"] < s["wall_s"] for f, s in zip(fast, slow))


def emit(result: dict, out: Path | None) -> None:
    """Print the result as JSON and write it to `out` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


def _revision(checkout: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{checkout} ({done.stdout.strip() or 'not a git checkout'})"


if __name__ == "__main__":
    sys.exit(main())
