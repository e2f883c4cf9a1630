"""Split a file's text into chunks that follow the code's units and fit the model.

Public entry point: `chunk_text`. One module per family of languages holds the tree-sitter
node types that make units; `splitter` holds the one shared algorithm that turns units into
chunks within the token budget.
"""

from __future__ import annotations

from indexer_core.chunking import bash, c_family, ecmascript, go, jvm, php, python, ruby, rust
from indexer_core.chunking.markdown import chunk_markdown
from indexer_core.chunking.spec import LanguageSpec
from indexer_core.chunking.splitter import FileSplitter
from indexer_core.chunking.syntax import SyntaxChunker
from indexer_core.chunking.tokens import TokenCounter
from indexer_core.discovery.languages import get_parser
from indexer_core.records import Span

SPECS: dict[str, LanguageSpec] = {
    **python.SPECS,
    **ecmascript.SPECS,
    **jvm.SPECS,
    **c_family.SPECS,
    **go.SPECS,
    **rust.SPECS,
    **ruby.SPECS,
    **php.SPECS,
    **bash.SPECS,
}

__all__ = ["SPECS", "chunk_text"]


def chunk_text(text: str, path: str, language: str, counter: TokenCounter) -> list[Span]:
    """Chunks of one file, in file order; never raises on the text itself.

    Code in a language with a spec is chunked by syntax, markdown by headings, anything
    else (or code whose parser fails) by line windows. Empty or blank text gives [].
    """
    if not text or text.isspace():
        return []
    if language == "markdown":
        return chunk_markdown(FileSplitter(text, path, counter))
    spec = SPECS.get(language)
    if spec is not None:
        try:
            src = text.encode("utf-8", "replace")
            tree = get_parser(language).parse(src)
            return SyntaxChunker(FileSplitter(text, path, counter), spec, src).run(tree.root_node)
        except (RecursionError, ValueError, RuntimeError, LookupError, AttributeError):
            pass  # fall back to line windows below
    return FileSplitter(text, path, counter).windows()
