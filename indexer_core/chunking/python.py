"""Python: classes hold methods; decorators wrap definitions."""

from __future__ import annotations

from indexer_core.chunking.spec import LanguageSpec

# `if sys.platform == "win32": def spawn...` and `try: ... except ImportError: def f...` define
# functions at module (or class) level like a plain `def`: they are opened, not kept as one run.
_BLOCKS = frozenset(
    {
        "if_statement",
        "elif_clause",
        "else_clause",
        "try_statement",
        "except_clause",
        "except_group_clause",
        "finally_clause",
    }
)

SPECS = {
    "python": LanguageSpec(
        containers={"class_definition": "class"},
        leaves={"function_definition": "function"},
        wrappers={"decorated_definition": "definition"},
        blocks=_BLOCKS,
        bodies=frozenset({"block"}),
    )
}
