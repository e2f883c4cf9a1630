"""Python: classes hold methods; decorators wrap definitions."""

from __future__ import annotations

from indexer_core.chunking.spec import LanguageSpec

SPECS = {
    "python": LanguageSpec(
        containers={"class_definition": "class"},
        leaves={"function_definition": "function"},
        wrappers={"decorated_definition": "definition"},
    )
}
