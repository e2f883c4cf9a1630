"""The repositories an index knows: name -> root path, kept in a LanceDB table beside the data.

Keeping the registry in the database itself means every process, sensor and CLI call that
reaches the database also knows where each repository lives.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from indexer_core.storage import tables as storage

REPOSITORIES = "repositories"
SCHEMA = pa.schema([("repo", pa.string()), ("root", pa.string()), ("registered_at", pa.float64())])


def name_for_path(root: str | os.PathLike[str]) -> str:
    """A repository name from its directory name, reduced to the characters names allow."""
    base = Path(root).resolve().name or "repo"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.") or "repo"
    if not name[0].isalnum():
        name = "r" + name
    return name[:64]


def checked_root(repo: str, root: str | os.PathLike[str]) -> str:
    """The absolute root a repository would be registered at; raises for a bad name or a
    path that is not a directory. Needs no database, so a caller can check before a run."""
    storage.check_repo_name(repo)
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"repository path {str(root)!r} does not exist or is not a directory"
        )
    return str(path.resolve())


def register(
    db_uri: str,
    repo: str,
    root: str | os.PathLike[str],
    requested_at: float | None = None,
) -> str:
    """Record (or move) a repository; returns its absolute root.

    With `requested_at` (when the registration was asked for: a run carries it in its tags),
    a registration made later wins: a run re-executed from the UI after the repository moved
    does not move it back."""
    storage.check_repo_name(repo)
    db = storage.connect(db_uri)
    table = storage.open_or_create(db, REPOSITORIES, SCHEMA)
    if requested_at is not None:  # a later registration makes the request moot, root and all
        rows = storage.read_rows(table, storage.repo_filter(repo), ["root", "registered_at"])
        if rows.num_rows and _superseded(
            max(rows.column("registered_at").to_pylist()), requested_at
        ):
            return rows.column("root")[0].as_py()
    absolute = checked_root(repo, root)
    at = time.time() if requested_at is None else requested_at
    row = pa.table({"repo": [repo], "root": [absolute], "registered_at": [at]}, schema=SCHEMA)
    storage.replace_rows(table, "repo", row, None)
    return absolute


@dataclass(frozen=True)
class Request:
    """A registration asked for and not yet recorded: what a run carries in its tags."""

    repo: str
    root: str
    requested_at: float


def repositories(db_uri: str, pending: Request | None = None) -> dict[str, str]:
    """All registered repositories, name -> root; with `pending`, as they are once `register`
    has recorded that request (a registration made later still wins), for a step that runs
    beside the one recording it."""
    table = storage.open_existing(storage.connect(db_uri), REPOSITORIES)
    roots: dict[str, str] = {}
    latest: dict[str, float] = {}
    if table is not None:
        rows = table.to_arrow()
        for repo, root, at in zip(
            rows.column("repo").to_pylist(),
            rows.column("root").to_pylist(),
            rows.column("registered_at").to_pylist(),
        ):
            roots[repo], latest[repo] = root, at
    if pending is not None and not _superseded(latest.get(pending.repo), pending.requested_at):
        roots[pending.repo] = checked_root(pending.repo, pending.root)
    return roots


def _superseded(registered_at: float | None, requested_at: float) -> bool:
    """Whether a request is moot: the repository was registered after it was asked for."""
    return registered_at is not None and registered_at > requested_at


def root_of(db_uri: str, repo: str, roots: dict[str, str] | None = None) -> str:
    """The root of a registered repository; `roots` (from `repositories`) saves a read of the
    registry where a caller asks about many partitions at once."""
    roots = repositories(db_uri) if roots is None else roots
    if repo not in roots:
        known = ", ".join(sorted(roots)) or "none"
        raise KeyError(f"repository {repo!r} is not registered (registered: {known})")
    return roots[repo]
