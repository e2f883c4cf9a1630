"""What a search may return: repository, language, kind and a path glob, as one filter that
LanceDB applies before ranking (`where`) and search applies to name rankings (`accepts`)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from indexer_core.storage import tables as storage


@dataclass(frozen=True)
class SearchFilters:
    repo: str | None = None
    language: str | None = None
    kind: str | None = None
    path_glob: str | None = None

    def where(self) -> str | None:
        """SQL prefilter for every field; the glob becomes an anchored regular expression."""
        clauses = []
        if self.repo:
            clauses.append(storage.repo_filter(self.repo))
        if self.language:
            clauses.append(f"language = {storage.sql_string(self.language)}")
        if self.kind:
            clauses.append(f"kind = {storage.sql_string(self.kind)}")
        if self.path_glob:
            clauses.append(
                f"regexp_like(path, {storage.sql_string(glob_to_regex(self.path_glob))})"
            )
        return " AND ".join(clauses) or None

    def accepts_path(self, path: str) -> bool:
        return not self.path_glob or fnmatch.fnmatchcase(path, self.path_glob)

    def accepts(self, row: dict) -> bool:
        return (
            (not self.repo or row["repo"] == self.repo)
            and (not self.language or row["language"] == self.language)
            and (not self.kind or row["kind"] == self.kind)
            and self.accepts_path(row["path"])
        )


_REGEX_SPECIAL = set("\\.+*?()|[]{}^$#&-~")


def glob_to_regex(glob: str) -> str:
    """A glob (fnmatch rules: `*` crosses `/`) as an anchored regex for the SQL filter."""
    out, i = ["^"], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and _class_end(glob, i) > 0:
            end = _class_end(glob, i)
            body = glob[i + 1 : end]
            neg = body.startswith("!")
            body = body[1:] if neg else body
            body = "".join("\\" + ch if ch in "\\[]^" else ch for ch in body)
            out.append("[" + ("^" if neg else "") + body + "]")
            i = end
        else:
            out.append("\\" + c if c in _REGEX_SPECIAL else c)
        i += 1
    out.append("$")
    return "".join(out)


def _class_end(glob: str, start: int) -> int:
    """Index of the `]` closing a glob character class opened at `start`, or -1."""
    j = start + 1
    if j < len(glob) and glob[j] == "!":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    return glob.find("]", j)
