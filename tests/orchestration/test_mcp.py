"""The MCP server for real: spawned over stdio by the mcp client, every tool called."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.core.search_corpus import build_index

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    return build_index(tmp_path_factory.mktemp("mcp"))


def _payload(result) -> object:
    assert not result.isError, result.content
    if result.structuredContent is not None:
        data = result.structuredContent
        return (
            data.get("result", data) if isinstance(data, dict) and set(data) == {"result"} else data
        )
    return json.loads(result.content[0].text)


async def _session_calls(db: str, home: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "DAGSTER_HOME": home,
        "CODE_INDEX_SHARDS": "1",
    }
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "orchestration.cli", "mcp", "--db", db],
        env=env,
        cwd=str(ROOT),
    )
    out: dict = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
        out["search"] = _payload(
            await session.call_tool("search_code", {"query": "parse_header", "limit": 3})
        )
        out["filtered"] = _payload(
            await session.call_tool(
                "search_code",
                {"query": "parse a header", "limit": 5, "language": "go", "path_glob": "go/*"},
            )
        )
        chunk_id = out["search"][0]["chunk_id"]
        out["chunk"] = _payload(await session.call_tool("get_chunk", {"chunk_id": chunk_id}))
        out["missing"] = await session.call_tool("get_chunk", {"chunk_id": "0" * 24})
        out["status"] = _payload(await session.call_tool("index_status", {}))
    return out


def test_mcp_tools_over_stdio(db, tmp_path):
    out = asyncio.run(asyncio.wait_for(_session_calls(db, str(tmp_path)), timeout=120))
    assert out["tools"] == ["get_chunk", "index_status", "search_code"]
    top = out["search"][0]
    assert top["name"] == "parse_header" and top["location"].startswith("pkg/http_client.py:")
    assert {"kind", "score", "snippet", "chunk_id", "content", "scope", "also"} <= top.keys()
    # The tool returns what `code-index search --json` prints: the hits' own dictionaries.
    from indexer_core.search.query import search

    assert out["search"] == json.loads(
        json.dumps([h.to_dict() for h in search(db, "parse_header", k=3)])
    )
    assert out["filtered"] and {h["language"] for h in out["filtered"]} == {"go"}
    chunk = out["chunk"]
    assert "def parse_header" in chunk["content"] and chunk["parent"]["kind"] == "module"
    assert out["missing"].isError
    status = out["status"]
    assert status["repositories"]["demo"]["chunks"] > 0
    assert status["repositories"]["demo"]["partitions"][0]["stale"] is False
    assert status["stale_partitions"] == [] and status["fts_index"] is True
    assert status["models"] == ["all-MiniLM-L6-v2"]
