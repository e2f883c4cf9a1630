"""A small repository with code, its tests, an example, docs and one long function, indexed
for real (real LanceDB, the packaged model), for the ranking stage and result sizes."""

from __future__ import annotations

from pathlib import Path

_LONG_BODY = "\n".join(
    f"    table.append(('step{i}', value * {i} + offset))  # accumulate checksum step {i}"
    for i in range(1, 140)
)

# One short line per entry: a ~100-line function that still fits one chunk of the model.
_TABLE = "\n".join(f"        {(i * 37) % 251}," for i in range(96))

FILES = {
    "src/router.py": """
import re


def match_route(pattern, path):
    regex = re.compile("^" + re.sub(r":(\\w+)", r"(?P<\\1>[^/]+)", pattern) + "$")
    found = regex.match(path)
    return found.groupdict() if found else None


class Router:
    def __init__(self):
        self.routes = []

    def add(self, pattern, handler):
        self.routes.append((pattern, handler))

    def dispatch(self, path):
        for pattern, handler in self.routes:
            params = match_route(pattern, path)
            if params is not None:
                return handler(**params)
        raise LookupError(path)
""",
    "tests/test_router.py": """
from src.router import Router, match_route


def test_match_route_extracts_params():
    assert match_route("/users/:id", "/users/7") == {"id": "7"}
    assert match_route("/users/:id", "/teams/7") is None
    assert match_route("/a/:x/b/:y", "/a/1/b/2") == {"x": "1", "y": "2"}


def test_dispatch_calls_the_matching_route_handler():
    router = Router()
    router.add("/users/:id", lambda id: ("user", id))
    assert router.dispatch("/users/3") == ("user", "3")
    assert match_route("/users/:id", "/users/3")
""",
    "examples/serve_routes.py": """
from src.router import Router

router = Router()
router.add("/hello/:name", lambda name: f"hello {name}")
print(router.dispatch("/hello/world"))
""",
    "docs/routing.md": """
# Routing

How does the router match a path? Each route pattern such as `/users/:id` is turned into a
regular expression; the router tries the routes in the order they were added and calls the
handler of the first route whose pattern matches the path, with the named parameters.

## Matching a path against route patterns

Route patterns match a path segment by segment. Parameters start with a colon.
""",
    "src/checksum.py": f"""
def rolling_checksum(data, offset=0):
    table = []
    value = len(data)
{_LONG_BODY}
    return sum(v for _, v in table) % 65521
""",
    "src/crc.py": f"""
def crc_lookup_table():
    return [
{_TABLE}
    ]
""",
    "src/session.py": """
class Session:
    def __init__(self, store):
        self.store = store
        self.data = {}

    def load_session(self, key):
        self.data = dict(self.store.get(key, {}))

    def save_session(self, key):
        self.store[key] = dict(self.data)

    def clear_session(self, key):
        self.data = {}
        self.store.pop(key, None)
""",
}


def build_index(tmp: Path, repo: str = "ranked", files: dict[str, str] | None = None) -> str:
    """Chunk, embed and index the repository (`files`, by default this module's); returns
    the database URI."""
    from indexer_core.embedding.model import load_embedder
    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.embed_step import embed_partition
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.search import indexes as search_index

    root = tmp / "repo"
    for rel, text in (FILES if files is None else files).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    db_uri = str(tmp / "lancedb")
    settings = IndexSettings(shards=1, use_git=False)
    chunk_partition(db_uri, repo, str(root), 0, settings)
    embed_partition(db_uri, repo, 0, load_embedder(settings.model))
    search_index.build_fts_indexes(db_uri)
    return db_uri
