"""Fetch the evaluation's repositories and make their indexed copies without doc comments.

    python -m bench.search_eval.prepare [--repos a,b] [--cache /tmp/search-eval/src]
                                        [--out /tmp/search-eval/prepared]

Each entry of `repos.toml` names one pinned source package:

- `fetch = {pypi = "click==8.1.7"}`: the sdist, `pip download --no-binary :all: --no-deps`;
- `fetch = {npm = "express@4.19.2"}`: the tarball, `npm pack`;
- `fetch = {apt = "pkg=version", path = "/usr/share/..."}`: a Debian package that ships its
  source (Go `golang-*-dev`, Rust `librust-*-dev`, Ruby `ruby-*`), installed with `apt-get`
  when the path is missing or another version is installed;
- `fetch = {apt_source_zip = "pkg=version", zip = "/path/in/pkg.zip", member_prefix = "dir/"}`:
  the members under `member_prefix` of a zip a Debian package ships (openjdk-17-source's
  src.zip), fetched with `apt-get download` and `dpkg -x`.

The unpacked source is cached under `--cache/<name>` (a rerun fetches nothing). The indexed
copy, `--out/<name>`, holds the files matched by `include` and not by `exclude` (globs over
repository-relative paths; `*` crosses `/`), at the same relative paths, with documentation
blanked out IN PLACE so every line keeps its number: Python docstrings (a body left empty
gets `pass`), `/** */` blocks (JavaScript, TypeScript, Java, C, ...), Go comment blocks
directly above declarations, Rust `///` and `//!`, Ruby `#` blocks directly above
`def`/`class`/`module`, C `/* */` and `//` blocks directly above functions. Ordinary comments
elsewhere stay. Query line numbers refer to this copy; `check_queries` verifies them.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOS_FILE = HERE / "repos.toml"
QUERIES_DIR = HERE / "queries"
DEFAULT_CACHE = Path("/tmp/search-eval/src")
QUERY_TYPES = ("semantic", "architecture", "symbol")


# ---------------------------------------------------------------- repositories


@dataclass
class Repo:
    name: str
    language: str
    fetch: dict
    include: list[str]
    exclude: list[str] = field(default_factory=list)
    split: str = "held-out"  # or "dev": ranking was tuned on it

    def wants(self, rel: str) -> bool:
        return any(fnmatch.fnmatchcase(rel, g) for g in self.include) and not any(
            fnmatch.fnmatchcase(rel, g) for g in self.exclude
        )


def load_repos(path: Path = REPOS_FILE, names: list[str] | None = None) -> list[Repo]:
    import tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    repos = [Repo(name=name, **entry) for name, entry in data.items()]
    if names:
        unknown = set(names) - {r.name for r in repos}
        if unknown:
            raise SystemExit(f"unknown repositories: {', '.join(sorted(unknown))}")
        repos = [r for r in repos if r.name in names]
    return repos


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def _unpack(archive: Path, dest: Path) -> Path:
    """Unpack into dest; return the archive's single top directory (or dest)."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
    else:
        with tarfile.open(archive) as t:
            t.extractall(tmp, filter="data")
    entries = list(tmp.iterdir())
    top = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
    shutil.rmtree(dest, ignore_errors=True)
    top.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch(repo: Repo, cache: Path) -> Path:
    """The repository's pristine source tree under cache/<name> (fetched once)."""
    dest = cache / repo.name
    stamp = cache / f"{repo.name}.fetched"
    spec = json.dumps(repo.fetch, sort_keys=True)
    if dest.is_dir() and stamp.exists() and stamp.read_text() == spec:
        return dest
    downloads = cache / "_downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    if "pypi" in repo.fetch:
        req = repo.fetch["pypi"]
        project, version = req.split("==")
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
                str(downloads),
                req,
            ]
        )
        stem = re.compile(
            rf"^{re.escape(project).replace('-', '[-_]')}-{re.escape(version)}\.(tar\.gz|zip)$",
            re.IGNORECASE,
        )
        archive = next(p for p in downloads.iterdir() if stem.match(p.name))
        _unpack(archive, dest)
    elif "npm" in repo.fetch:
        pkg = repo.fetch["npm"]
        out = (
            subprocess.run(
                ["npm", "pack", pkg, "--silent", "--pack-destination", str(downloads)],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        _unpack(downloads / out, dest)
    elif "apt" in repo.fetch:
        pkg, _, version = repo.fetch["apt"].partition("=")
        src = Path(repo.fetch["path"])
        installed = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=False
        )
        if not src.is_dir() or (version and installed.stdout.strip() != version):
            env_cmd = [
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                repo.fetch["apt"],
            ]
            try:
                _run(env_cmd)
            except (subprocess.CalledProcessError, FileNotFoundError) as exc:
                raise SystemExit(
                    f"{repo.name}: could not install {repo.fetch['apt']} ({exc}); "
                    "run `apt-get update` and retry as root"
                ) from exc
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, symlinks=False)
    elif "apt_source_zip" in repo.fetch:
        _fetch_source_zip(repo, downloads, dest)
    else:
        raise SystemExit(f"{repo.name}: unknown fetch {repo.fetch}")
    stamp.write_text(spec)
    return dest


def _fetch_source_zip(repo: Repo, downloads: Path, dest: Path) -> None:
    """The members under `member_prefix` of a zip that a Debian package ships (the JDK's
    src.zip), prefix stripped: `apt-get download` and `dpkg -x`, so no root is needed."""
    spec = repo.fetch
    with tempfile.TemporaryDirectory(dir=downloads) as tmp_name:
        tmp = Path(tmp_name)
        try:
            _run(["apt-get", "download", "-q", spec["apt_source_zip"]], cwd=tmp)
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            raise SystemExit(
                f"{repo.name}: could not download {spec['apt_source_zip']} ({exc}); "
                "run `apt-get update` and retry"
            ) from exc
        (deb,) = tmp.glob("*.deb")
        extracted = tmp / "x"
        _run(["dpkg", "-x", str(deb), str(extracted)], cwd=tmp)
        shutil.rmtree(dest, ignore_errors=True)
        prefix = spec["member_prefix"]
        with zipfile.ZipFile(extracted / spec["zip"].lstrip("/")) as zf:
            for info in zf.infolist():
                if info.filename.startswith(prefix) and not info.is_dir():
                    target = dest / info.filename[len(prefix) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))


# ---------------------------------------------------------------- doc stripping
#
# Every function takes a file's text and returns it with documentation blanked; the result
# always has exactly as many lines as the input.


def _blank_lines(lines: list[str], numbers) -> None:
    for i in numbers:
        lines[i] = ""


def strip_python(text: str) -> str:
    """Module, class and function docstrings, and attribute docstrings (a string statement
    right after an assignment); a body that was only a docstring gets `pass`."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.split("\n")

    def is_string(stmt: ast.stmt) -> bool:
        return (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        )

    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        docs = [
            i
            for i, stmt in enumerate(body)
            if is_string(stmt) and (i == 0 or isinstance(body[i - 1], (ast.Assign, ast.AnnAssign)))
        ]
        for i in docs:
            stmt = body[i]
            first, last = stmt.lineno - 1, stmt.end_lineno - 1
            before = lines[first][: stmt.col_offset]
            after = lines[last][stmt.end_col_offset :]
            if before.strip() or (after.strip() and not after.strip().startswith("#")):
                continue  # shares a line with other code (`def f(): "doc"`): leave it
            _blank_lines(lines, range(first, last + 1))
            if len(body) == 1 and not isinstance(node, ast.Module):
                lines[first] = before + "pass"
    return "\n".join(lines)


def _comments(text: str, backtick: bool = True) -> list[tuple[int, int, str]]:
    """(start, end, kind) character ranges of the comments of a C-family text.

    kind is "doc" for `/** ... */`, "block" for other `/* */`, "line" for `//`. Strings
    ('...', "...", and `...` when backtick) are skipped; a quote string ends at its line's
    end at the latest, so a JavaScript regex literal holding a quote costs one line.
    """
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append((i, j, "line"))
            i = j
        elif c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            doc = text.startswith("/**", i) and not text.startswith("/**/", i)
            out.append((i, j, "doc" if doc else "block"))
            i = j
        elif c in "'\"" or (c == "`" and backtick):
            j = i + 1
            while j < n and text[j] != c and not (c != "`" and text[j] == "\n"):
                j += 2 if text[j] == "\\" else 1
            i = j + 1
        else:
            i += 1
    return out


def _blank_ranges(text: str, ranges: list[tuple[int, int]]) -> str:
    """Remove the characters of ranges (newlines stay); strip trailing blanks of touched lines."""
    if not ranges:
        return text
    chars = list(text)
    touched = set()
    for start, end in ranges:
        for k in range(start, end):
            if chars[k] != "\n":
                chars[k] = ""
        touched.update(range(text.count("\n", 0, start), text.count("\n", 0, end) + 1))
    lines = "".join(chars).split("\n")
    for t in touched:
        if t < len(lines):
            lines[t] = lines[t].rstrip()
    return "\n".join(lines)


def _comment_blocks_above(text: str, comments, is_decl) -> list[tuple[int, int]]:
    """Comments forming whole-line blocks directly above a line for which is_decl(lines, i).

    A block is a run of lines holding nothing but comments, with no blank line between it
    and the declaration; a comment that starts or ends on a line with code is never part
    of one, so removing a block never leaves half a comment.
    """
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    line_of = lambda pos: text.count("\n", 0, pos)
    spans = [(s, e, line_of(s), line_of(max(s, e - 1))) for s, e, _ in comments]
    only_comment = [False] * len(lines)
    for s, e, ls, le in spans:
        if (
            text[offsets[ls] : s].strip()
            or text[e : offsets[le + 1] - 1 if le + 1 < len(offsets) else len(text)].strip()
        ):
            continue
        for k in range(ls, le + 1):
            only_comment[k] = True
    ranges = []
    for i, line in enumerate(lines):
        if not line.strip() or only_comment[i] or not is_decl(lines, i):
            continue
        k = i - 1
        while k >= 0 and only_comment[k]:
            k -= 1
        if k == i - 1:
            continue
        lo, hi = offsets[k + 1], offsets[i]
        ranges += [(s, e) for s, e, _, _ in spans if lo <= s and e <= hi]
    return ranges


def strip_block_docs(text: str) -> str:
    """`/** ... */` comments (JavaScript, TypeScript, Java, C#, Kotlin, PHP, ...)."""
    return _blank_ranges(text, [(s, e) for s, e, kind in _comments(text) if kind == "doc"])


_C_DECL = re.compile(
    r"^(?!(?:typedef|struct|union|enum|return|if|while|for|switch|else|do)\b)[A-Za-z_][\w \t\*]*$|"
    r"^(?!(?:typedef|return|if|while|for|switch|else|do)\b)[A-Za-z_][\w \t\*,]*\("
)


def _c_function_start(lines: list[str], i: int) -> bool:
    """A function definition starts at line i: top-level, `(` before `;`, then `{` before `;`."""
    if not _C_DECL.match(lines[i]):
        return False
    tail = "\n".join(lines[i : i + 12])
    paren, semi = tail.find("("), tail.find(";")
    brace = tail.find("{")
    return paren >= 0 and brace > paren and (semi < 0 or semi > brace)


def strip_c(text: str) -> str:
    """C and C++: `/** */` anywhere, and `/* */` or `//` blocks directly above a function."""
    comments = _comments(text, backtick=False)
    ranges = [(s, e) for s, e, kind in comments if kind == "doc"]
    ranges += _comment_blocks_above(text, comments, _c_function_start)
    return _blank_ranges(text, ranges)


_GO_TOP = re.compile(r"^(func|type|var|const|package)\b")
_GO_GROUP = re.compile(r"^(type|var|const)\b.*[({]\s*$")
_GO_DIRECTIVE = re.compile(r"^//(go:|line |export |extern |nolint)|^// \+build")


def strip_go(text: str) -> str:
    """Go: comment blocks directly above declarations (top level, or entries of a
    `type`/`var`/`const` block); `//go:` and `// +build` directives stay."""
    lines = text.split("\n")
    in_group = [False] * len(lines)
    inside = False
    for i, line in enumerate(lines):
        if inside and re.match(r"^[)}]", line):
            inside = False
        in_group[i] = inside
        if _GO_GROUP.match(line):
            inside = True

    def is_decl(ls: list[str], i: int) -> bool:
        return bool(_GO_TOP.match(ls[i])) or (
            in_group[i] and not ls[i].lstrip().startswith(("//", "/*"))
        )

    comments = _comments(text)
    ranges = [
        (s, e)
        for s, e in _comment_blocks_above(text, comments, is_decl)
        if not _GO_DIRECTIVE.match(text[s:e])
    ]
    return _blank_ranges(text, ranges)


def strip_rust(text: str) -> str:
    """Rust: `///` and `//!` doc comment lines (not `////`)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        s = line.lstrip()
        if (s.startswith("///") and not s.startswith("////")) or s.startswith("//!"):
            lines[i] = ""
    return "\n".join(lines)


_RUBY_DECL = re.compile(r"^\s*(def|class|module|attr_reader|attr_writer|attr_accessor)\b")
_RUBY_KEEP = re.compile(r"^\s*#\s*(frozen_string_literal|-\*-|encoding:|coding[:=]|rubocop:)|^#!")


def strip_ruby(text: str) -> str:
    """Ruby: runs of `#` comment lines directly above `def`, `class`, `module`, `attr_*`."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not _RUBY_DECL.match(line):
            continue
        k = i - 1
        while k >= 0 and lines[k].lstrip().startswith("#") and not _RUBY_KEEP.match(lines[k]):
            k -= 1
        _blank_lines(lines, range(k + 1, i))
    return "\n".join(lines)


STRIPPERS = {
    ".py": strip_python,
    ".pyi": strip_python,
    ".js": strip_block_docs,
    ".mjs": strip_block_docs,
    ".cjs": strip_block_docs,
    ".jsx": strip_block_docs,
    ".ts": strip_block_docs,
    ".mts": strip_block_docs,
    ".cts": strip_block_docs,
    ".tsx": strip_block_docs,
    ".java": strip_block_docs,
    ".kt": strip_block_docs,
    ".scala": strip_block_docs,
    ".cs": strip_block_docs,
    ".php": strip_block_docs,
    ".swift": strip_block_docs,
    ".c": strip_c,
    ".h": strip_c,
    ".cc": strip_c,
    ".cpp": strip_c,
    ".cxx": strip_c,
    ".hpp": strip_c,
    ".hh": strip_c,
    ".go": strip_go,
    ".rs": strip_rust,
    ".rb": strip_ruby,
    ".rake": strip_ruby,
}


def strip_docs(path: str, text: str) -> str:
    strip = STRIPPERS.get(Path(path).suffix.lower())
    if strip is None:
        return text
    out = strip(text)
    if out.count("\n") != text.count("\n"):  # never: every stripper keeps lines
        raise AssertionError(f"{path}: stripping changed the line count")
    return out


def prepare(repo: Repo, src: Path, out: Path) -> dict:
    """Write the indexed copy of repo (from its fetched tree src) to out; return counts."""
    out.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, bytes] = {}
    stats = {"files": 0, "lines": 0, "doc_lines_blanked": 0}
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if not path.is_file() or path.is_symlink() or not repo.wants(rel):
            continue
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            wanted[rel] = data
            continue
        stripped = strip_docs(rel, text)
        stats["files"] += 1
        stats["lines"] += text.count("\n") + 1
        stats["doc_lines_blanked"] += sum(
            1 for a, b in zip(text.split("\n"), stripped.split("\n")) if a != b and not b.strip()
        )
        wanted[rel] = stripped.encode("utf-8")
    for path in sorted(out.rglob("*"), reverse=True):  # drop what the copy no longer holds
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for rel, data in wanted.items():
        target = out / rel
        if target.is_file() and target.read_bytes() == data:
            continue  # unchanged: keep its mtime, so a rerun re-chunks nothing
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return stats


# ---------------------------------------------------------------- queries


def load_queries(repo: str, directory: Path = QUERIES_DIR) -> list[dict]:
    path = directory / f"{repo}.jsonl"
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def check_queries(repo: str, queries: list[dict], tree: Path) -> list[str]:
    """Problems with a repository's queries against its prepared copy (empty: all good)."""
    problems, seen, lengths = [], set(), {}
    for q in queries:
        qid = q.get("id", "?")
        if qid in seen:
            problems.append(f"{qid}: duplicate id")
        seen.add(qid)
        if q.get("repo") != repo or not str(qid).startswith(f"{repo}-"):
            problems.append(f"{qid}: repo must be {repo!r} and the id start with '{repo}-'")
        if q.get("type") not in QUERY_TYPES:
            problems.append(f"{qid}: type {q.get('type')!r} not one of {QUERY_TYPES}")
        if not str(q.get("query", "")).strip():
            problems.append(f"{qid}: empty query")
        relevant = q.get("relevant") or []
        if not any(r.get("grade") == 2 for r in relevant):
            problems.append(f"{qid}: no grade-2 span")
        for r in relevant:
            path, start, end, grade = r.get("path"), r.get("start"), r.get("end"), r.get("grade")
            if grade not in (1, 2):
                problems.append(f"{qid}: grade {grade!r} not 1 or 2")
            if path not in lengths:
                f = tree / path if path else None
                lengths[path] = (
                    f.read_text(encoding="utf-8").split("\n") if f and f.is_file() else None
                )
            lines = lengths[path]
            if lines is None:
                problems.append(f"{qid}: {path} is not in the prepared copy")
            elif not (
                isinstance(start, int) and isinstance(end, int) and 1 <= start <= end <= len(lines)
            ):
                problems.append(
                    f"{qid}: {path}:{start}-{end} outside the file's {len(lines)} lines"
                )
            elif not any(line.strip() for line in lines[start - 1 : end]):
                problems.append(f"{qid}: {path}:{start}-{end} is blank in the prepared copy")
    return problems


def prepare_all(repos: list[Repo], cache: Path, out: Path, check: bool = True) -> dict[str, dict]:
    report = {}
    for repo in repos:
        src = fetch(repo, cache)
        stats = prepare(repo, src, out / repo.name)
        queries = load_queries(repo.name)
        stats["queries"] = len(queries)
        if check:
            problems = check_queries(repo.name, queries, out / repo.name)
            if problems:
                raise SystemExit(
                    f"{repo.name}: {len(problems)} problems in queries:\n  " + "\n  ".join(problems)
                )
        print(
            f"{repo.name}: {stats['files']} files, {stats['lines']} lines, "
            f"{stats['doc_lines_blanked']} doc lines blanked, {stats['queries']} queries",
            flush=True,
        )
        report[repo.name] = stats
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repos", help="comma-separated names (default: all in repos.toml)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=DEFAULT_CACHE.parent / "prepared")
    parser.add_argument("--no-check", action="store_true", help="skip the query span check")
    args = parser.parse_args()
    repos = load_repos(names=args.repos.split(",") if args.repos else None)
    prepare_all(repos, args.cache, args.out, check=not args.no_check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
