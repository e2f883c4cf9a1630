"""The text a model wants before a query and before a document.

Retrieval models trained with instructions (e5, bge, nomic, CodeRankEmbed, ...) embed a query
well only with their query prefix ("Represent this query for searching relevant code: ") and
some want a document prefix too. sentence-transformers models declare them in
`config_sentence_transformers.json` under `prompts`; this is the one place that reads them.
The document prefix becomes part of every chunk's embedded text (so it counts against the
token budget, and a change re-chunks and re-embeds); the query prefix is put before every
query by whatever embeds it (torch or ONNX). all-MiniLM-L6-v2 declares none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from indexer_core.embedding.model_location import resolve_model_path

_QUERY_KEYS = ("query", "search_query", "queries")
_DOCUMENT_KEYS = ("document", "passage", "search_document", "documents", "corpus", "code")


@dataclass(frozen=True)
class Prompts:
    query: str = ""
    document: str = ""


@lru_cache(maxsize=8)
def model_prompts(model: str) -> Prompts:
    """The query and document prefixes a model declares (empty when it declares none)."""
    try:
        path = resolve_model_path(model) / "config_sentence_transformers.json"
    except FileNotFoundError:
        return Prompts()
    if not path.is_file():
        return Prompts()
    prompts = json.loads(path.read_text()).get("prompts") or {}

    def first(keys: tuple[str, ...]) -> str:
        return next((prompts[k] for k in keys if isinstance(prompts.get(k), str)), "")

    return Prompts(query=first(_QUERY_KEYS), document=first(_DOCUMENT_KEYS))
