"""Fetch the Java, Ruby, C and TypeScript repositories of repos.toml and check their queries.

    python bench/search_eval/check_queries_b.py [--cache /tmp/search-eval/src] [--no-fetch]
                                                [--repo NAME]

Each repository's root (see repos.toml) lands in CACHE/<name>, the layout prepare.py uses.
Checks, for every line of queries/<name>.jsonl: the fields and their
types, unique ids of the form <repo>-NNN, that each relevant path exists under the root and is
matched by include/exclude, that each span lies within its file and starts on a line that is
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
import zipfile
from pathlib import Path

import tomllib

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
    """Unpack into dest, dropping the archive's single top directory (as prepare.py does)."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    entries = list(tmp.iterdir())
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
    shutil.rmtree(dest, ignore_errors=True)
    top.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)


def fetch(name: str, spec: dict, cache: Path) -> Path:
    """The repository's source tree (its root) under cache/<name>, fetched once.

    Same layout and stamp as prepare.py's fetch (cache/<name>, cache/<name>.fetched holding
    the fetch spec), so either tool reuses what the other fetched.
    """
    root = cache / name
    stamp = cache / f"{name}.fetched"
    pin = json.dumps(spec, sort_keys=True)
    if root.is_dir() and stamp.exists() and stamp.read_text() == pin:
        return root
    downloads = cache / "_downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp_name:
        tmp = Path(tmp_name)
        if "pypi" in spec:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    "-q",
                    "-d",
                    str(tmp),
                    spec["pypi"],
                ],
                tmp,
            )
            (archive,) = tmp.iterdir()
            _unpack(archive, root)
        elif "npm" in spec:
            _run(["npm", "pack", "--silent", spec["npm"]], tmp)
            (archive,) = tmp.glob("*.tgz")
            _unpack(archive, root)
        elif "apt" in spec or "apt_source_zip" in spec:
            _run(["apt-get", "download", "-q", spec.get("apt") or spec["apt_source_zip"]], tmp)
            (deb,) = tmp.glob("*.deb")
            extracted = tmp / "x"
            _run(["dpkg", "-x", str(deb), str(extracted)], tmp)
            shutil.rmtree(root, ignore_errors=True)
            if "apt" in spec:
                shutil.copytree(extracted / spec["path"].lstrip("/"), root, symlinks=False)
            else:
                prefix = spec["member_prefix"]
                with zipfile.ZipFile(extracted / spec["zip"].lstrip("/")) as zf:
                    for info in zf.infolist():
                        if info.filename.startswith(prefix) and not info.is_dir():
                            target = root / info.filename[len(prefix) :]
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(zf.read(info))
        else:
            raise SystemExit(f"{name}: unknown fetch {spec}")
    stamp.write_text(pin)
    return root


def wanted(rel: str, repo: dict) -> bool:
    return any(fnmatch.fnmatchcase(rel, g) for g in repo["include"]) and not any(
        fnmatch.fnmatchcase(rel, g) for g in repo.get("exclude", [])
    )


def indexed_files(root: Path, repo: dict) -> list[str]:
    exts = EXTENSIONS[repo["language"]]
    return [
        rel
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.name.endswith(exts)
        and wanted(rel := p.relative_to(root).as_posix(), repo)
    ]


def check_repo(
    name: str, repo: dict, base: Path, queries_path: Path, seen_ids: set[str]
) -> tuple[list[str], collections.Counter]:
    errors: list[str] = []
    counts: collections.Counter = collections.Counter()
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
            if not wanted(path, repo):
                errors.append(f"{where}: {path} is not matched by include/exclude")
            if path not in lines_cache:
                lines_cache[path] = file.read_text(errors="replace").splitlines()
            lines = lines_cache[path]
            s, e = r["start"], r["end"]
            if not (isinstance(s, int) and isinstance(e, int) and 1 <= s <= e <= len(lines)):
                errors.append(f"{where}: span {s}-{e} outside {path} (1-{len(lines)})")
                continue
            first = lines[s - 1]
            if not first.strip() or COMMENT_START[repo["language"]].match(first):
                errors.append(
                    f"{where}: span {path}:{s} starts on a blank or comment line: {first!r}"
                )
            if q["type"] == "symbol" and r["grade"] == 2:
                ident = re.split(r"::|\.|#", q["query"].strip())[-1]
                text = "\n".join(lines[s - 1 : e])
                if not re.search(rf"(?<![A-Za-z0-9_]){re.escape(ident)}(?![A-Za-z0-9_])", text):
                    errors.append(f"{where}: grade-2 span {path}:{s}-{e} lacks {ident!r}")
    return errors, counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/search-eval/src"))
    ap.add_argument("--no-fetch", action="store_true", help="use what is already under --cache")
    ap.add_argument("--repo", action="append", help="check only this repository (repeatable)")
    args = ap.parse_args()
    config = {
        name: repo
        for name, repo in tomllib.loads((HERE / "repos.toml").read_text()).items()
        if repo["language"] in EXTENSIONS
    }
    all_errors: list[str] = []
    total: collections.Counter = collections.Counter()
    seen: set[str] = set()
    for name, repo in config.items():
        if args.repo and name not in args.repo:
            continue
        root = args.cache / name if args.no_fetch else fetch(name, repo["fetch"], args.cache)
        files = indexed_files(root, repo)
        errors, counts = check_repo(name, repo, root, HERE / "queries" / f"{name}.jsonl", seen)
        if not files:
            errors.append(f"{name}: no files to index under {root}")
        all_errors += errors
        total += counts
        print(
            f"{name:12s} {repo['language']:10s} {len(files):4d} files  "
            f"{sum(counts.values()):3d} queries  " + "  ".join(f"{t} {counts[t]}" for t in TYPES)
        )
    print(f"total {sum(total.values())} queries: " + ", ".join(f"{t} {total[t]}" for t in TYPES))
    for e in all_errors:
        print("ERROR", e)
    print("OK" if not all_errors else f"{len(all_errors)} errors")
    return 1 if all_errors else 0


if __name__ == "__main__":
    sys.exit(main())
