"""Fetch the repositories of repos_b.toml and check their queries.

    python bench/search_eval/check_queries_b.py [--src /tmp/search-eval/src] [--no-fetch] [--repo NAME]

Each repository lands in SRC/<name>/ (the fetch "root" described in repos_b.toml); downloads
are cached in SRC/../dl. Checks, for every line of queries/<name>.jsonl: the fields and their
types, unique ids of the form <repo>-NNN, that each relevant path exists under the indexed
directory and is not excluded, that each span lies within its file and starts on a line that is
neither blank nor a comment (doc comments are blanked in the indexed copy), at least one grade-2
judgment, and that every grade-2 span of a symbol query contains the symbol's last identifier.
Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TYPES = ("semantic", "architecture", "symbol")
EXTENSIONS = {
    "java": (".java",),
    "ruby": (".rb",),
    "c": (".c", ".h"),
    "typescript": (".ts",),
}
COMMENT_START = {
    "ruby": re.compile(r"^\s*#"),
    "java": re.compile(r"^\s*(//|/\*|\*)"),
    "c": re.compile(r"^\s*(//|/\*|\*)"),
    "typescript": re.compile(r"^\s*(//|/\*|\*)"),
}


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _unpack(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def fetch(repo: dict, src: Path, dl: Path) -> Path:
    """Fetch one repository into src/<name> (its root); cached by a marker holding the pin."""
    fetch_spec = repo["fetch"]
    root = src / repo["name"]
    marker = root / ".search-eval-fetched"
    pin = json.dumps(fetch_spec, sort_keys=True)
    if marker.exists() and marker.read_text() == pin:
        return root
    shutil.rmtree(root, ignore_errors=True)
    dl.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True)
    if "pypi" in fetch_spec:
        name, version = fetch_spec["pypi"].split("==")
        with tempfile.TemporaryDirectory(dir=dl) as tmp:
            _run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                  "-d", tmp, fetch_spec["pypi"]], dl)
            (archive,) = Path(tmp).iterdir()
            _unpack(archive, root)
    elif "npm" in fetch_spec:
        with tempfile.TemporaryDirectory(dir=dl) as tmp:
            _run(["npm", "pack", "--silent", fetch_spec["npm"]], Path(tmp))
            (archive,) = Path(tmp).glob("*.tgz")
            _unpack(archive, root)
    elif "apt" in fetch_spec or "apt_source_zip" in fetch_spec:
        package = fetch_spec.get("apt") or fetch_spec["apt_source_zip"]
        with tempfile.TemporaryDirectory(dir=dl) as tmp:
            _run(["apt-get", "download", "-q", package], Path(tmp))
            (deb,) = Path(tmp).glob("*.deb")
            extracted = Path(tmp) / "x"
            _run(["dpkg", "-x", str(deb), str(extracted)], Path(tmp))
            if "apt" in fetch_spec:
                shutil.rmtree(root)
                shutil.copytree(extracted / fetch_spec["path"].lstrip("/"), root, symlinks=False)
            else:
                prefix = fetch_spec["member_prefix"]
                with zipfile.ZipFile(extracted / fetch_spec["zip"].lstrip("/")) as zf:
                    for info in zf.infolist():
                        if info.filename.startswith(prefix) and not info.is_dir():
                            target = root / info.filename[len(prefix):]
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(zf.read(info))
    else:
        raise SystemExit(f"{repo['name']}: unknown fetch {fetch_spec}")
    marker.write_text(pin)
    return root


def excluded(rel: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(Path(rel).name, g) for g in globs)


def indexed_files(base: Path, repo: dict) -> list[str]:
    exts = EXTENSIONS[repo["language"]]
    out = []
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base).as_posix()
        if p.is_file() and p.name.endswith(exts) and not excluded(rel, repo.get("exclude", [])):
            out.append(rel)
    return out


def check_repo(repo: dict, base: Path, queries_path: Path, seen_ids: set[str]) -> tuple[list[str], collections.Counter]:
    errors: list[str] = []
    counts: collections.Counter = collections.Counter()
    name = repo["name"]
    lines_cache: dict[str, list[str]] = {}
    if not queries_path.exists():
        return [f"{queries_path}: missing"], counts
    for n, raw in enumerate(queries_path.read_text().splitlines(), 1):
        where = f"{queries_path.name}:{n}"
        if not raw.strip():
            errors.append(f"{where}: blank line")
            continue
        try:
            q = json.loads(raw)
        except json.JSONDecodeError as e:
            errors.append(f"{where}: bad JSON ({e})")
            continue
        if set(q) != {"id", "repo", "type", "query", "relevant"}:
            errors.append(f"{where}: keys {sorted(q)}")
            continue
        qid = q["id"]
        where = f"{where} {qid}"
        if not re.fullmatch(rf"{re.escape(name)}-\d{{3}}", qid):
            errors.append(f"{where}: id must be {name}-NNN")
        if qid in seen_ids:
            errors.append(f"{where}: duplicate id")
        seen_ids.add(qid)
        if q["repo"] != name:
            errors.append(f"{where}: repo {q['repo']!r} != {name!r}")
        if q["type"] not in TYPES:
            errors.append(f"{where}: type {q['type']!r}")
        if not isinstance(q["query"], str) or not q["query"].strip():
            errors.append(f"{where}: empty query")
        counts[q["type"]] += 1
        rel = q["relevant"]
        if not isinstance(rel, list) or not rel:
            errors.append(f"{where}: no relevant spans")
            continue
        if not any(r.get("grade") == 2 for r in rel):
            errors.append(f"{where}: no grade-2 span")
        for r in rel:
            if set(r) != {"path", "start", "end", "grade"} or r["grade"] not in (1, 2):
                errors.append(f"{where}: bad judgment {r}")
                continue
            path = r["path"]
            file = base / path
            if not file.is_file():
                errors.append(f"{where}: {path} does not exist")
                continue
            if excluded(path, repo.get("exclude", [])):
                errors.append(f"{where}: {path} is excluded")
            if path not in lines_cache:
                lines_cache[path] = file.read_text(errors="replace").splitlines()
            lines = lines_cache[path]
            s, e = r["start"], r["end"]
            if not (isinstance(s, int) and isinstance(e, int) and 1 <= s <= e <= len(lines)):
                errors.append(f"{where}: span {s}-{e} outside {path} (1-{len(lines)})")
                continue
            first = lines[s - 1]
            if not first.strip() or COMMENT_START[repo["language"]].match(first):
                errors.append(f"{where}: span {path}:{s} starts on a blank or comment line: {first!r}")
            if q["type"] == "symbol" and r["grade"] == 2:
                ident = re.split(r"::|\.|#", q["query"].strip())[-1]
                text = "\n".join(lines[s - 1:e])
                if not re.search(rf"(?<![A-Za-z0-9_]){re.escape(ident)}(?![A-Za-z0-9_])", text):
                    errors.append(f"{where}: grade-2 span {path}:{s}-{e} lacks {ident!r}")
    return errors, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path("/tmp/search-eval/src"))
    ap.add_argument("--no-fetch", action="store_true", help="use what is already under --src")
    ap.add_argument("--repo", action="append", help="check only this repository (repeatable)")
    args = ap.parse_args()
    config = tomllib.loads((HERE / "repos_b.toml").read_text())
    all_errors: list[str] = []
    total: collections.Counter = collections.Counter()
    seen: set[str] = set()
    for repo in config["repo"]:
        if args.repo and repo["name"] not in args.repo:
            continue
        root = args.src / repo["name"] if args.no_fetch else fetch(repo, args.src, args.src.parent / "dl")
        base = root / repo["subdir"]
        files = indexed_files(base, repo)
        errors, counts = check_repo(repo, base, HERE / "queries" / f"{repo['name']}.jsonl", seen)
        all_errors += errors
        total += counts
        print(f"{repo['name']:12s} {repo['language']:10s} {len(files):4d} files  "
              f"{sum(counts.values()):3d} queries  " + "  ".join(f"{t} {counts[t]}" for t in TYPES))
    print(f"total {sum(total.values())} queries: " + ", ".join(f"{t} {total[t]}" for t in TYPES))
    for e in all_errors:
        print("ERROR", e)
    print("OK" if not all_errors else f"{len(all_errors)} errors")
    return 1 if all_errors else 0


if __name__ == "__main__":
    sys.exit(main())
