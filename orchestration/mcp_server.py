"""MCP server: the code index as tools for coding agents (stdio transport by default).

Start it with `code-index mcp` (or `code-index-mcp`); point it at an index with `--db` or
`$CODE_INDEX_DB`. An agent's MCP settings, for example:

    {"mcpServers": {"code-index": {"command": "code-index",
                                   "args": ["mcp", "--db", "/path/lancedb"]}}}

The model and tables are loaded once and reused for every call.
"""

from __future__ import annotations

import sys

from mcp.server.fastmcp import FastMCP

from indexer_core.search.filters import SearchFilters
from indexer_core.search.hits import get_chunk
from indexer_core.search.query import MODES, search
from orchestration import config


def build_server(db_uri: str) -> FastMCP:
    """A FastMCP server whose tools read the index at `db_uri`."""
    query_options = config.load().query_options()
    server = FastMCP(
        "code-index",
        instructions=(
            "Search a code index of chunked, embedded source repositories. Use search_code to find "
            "code by meaning or identifier, get_chunk to read a result in full with its enclosing "
            "and nested chunks, index_status to see what is indexed and whether it is up to date."
        ),
    )

    @server.tool()
    def search_code(
        query: str,
        limit: int = 10,
        mode: str = "hybrid",
        language: str | None = None,
        path_glob: str | None = None,
        kind: str | None = None,
        repo: str | None = None,
        min_score: float | None = None,
        expand: bool = False,
        explain: bool = False,
    ) -> list[dict]:
        """Find code for a natural-language or identifier query (e.g. `HttpClient.send`).

        mode: hybrid (default), vector or text. Filters: language (python, go, ...), path_glob
        over repository-relative paths ('src/*.py'), kind (function, method, class, ...), repo.
        Best file first, each file's best span first (at most ~60 lines, `content`),
        chunk_id (for get_chunk), location path:start-end, kind, name, scope (enclosing
        units), part/parts and unit_start/unit_end of a long unit, `also` (other matching
        chunks of the file). expand: a long unit's whole text; explain: why each ranks there.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        filters = SearchFilters(repo=repo, language=language, kind=kind, path_glob=path_glob)
        hits = search(
            db_uri,
            query,
            k=max(1, min(limit, 100)),
            mode=mode,
            filters=filters,
            min_score=min_score,
            query_options=query_options,
            expand=expand,
            explain=explain,
        )
        return [hit.to_dict() for hit in hits]  # what `code-index search --json` prints

    @server.tool(name="get_chunk")
    def get_chunk_by_id(chunk_id: str) -> dict:
        """The full text of one chunk with its parent (enclosing) chunk and its children."""
        chunk = get_chunk(db_uri, chunk_id)
        if chunk is None:
            raise ValueError(f"no chunk with id {chunk_id!r}")
        return chunk

    @server.tool()
    def index_status(check_stale: bool = True) -> dict:
        """Repositories, partitions with row counts, stale partitions, search indexes, last run."""
        from orchestration.status import index_status as status

        return status(db_uri, check_stale=check_stale)

    return server


def serve(db_uri: str, transport: str = "stdio") -> None:
    build_server(db_uri).run(transport=transport)


def main(argv: list[str] | None = None) -> int:
    """Console script `code-index-mcp`: the same as `code-index mcp`."""
    from orchestration.cli import main as cli_main

    return cli_main(["mcp", *(argv if argv is not None else sys.argv[1:])])
