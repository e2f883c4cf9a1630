"""Which language a file is, and its tree-sitter parser.

This is the only module that loads grammars, so the version pinning quirks of
tree-sitter-languages (and the FutureWarning it triggers) stay in one place.
"""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import PurePosixPath

from tree_sitter import Parser

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".c++": "cpp",
    ".cs": "c_sharp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".scala": "scala",
    ".sc": "scala",
    ".sh": "bash",
    ".bash": "bash",
    ".md": "markdown",
    ".markdown": "markdown",
}

_FILENAMES: dict[str, str] = {
    "Rakefile": "ruby",
    "Gemfile": "ruby",
    "Vagrantfile": "ruby",
    ".bashrc": "bash",
    ".bash_profile": "bash",
}

_SHEBANGS: dict[str, str] = {
    "python": "python",
    "python3": "python",
    "bash": "bash",
    "sh": "bash",
    "zsh": "bash",
    "node": "javascript",
    "ruby": "ruby",
    "php": "php",
}

# Languages that have a tree-sitter grammar we chunk by syntax.
AST_LANGUAGES: frozenset[str] = frozenset(
    {
        "python",
        "javascript",
        "typescript",
        "tsx",
        "java",
        "go",
        "rust",
        "c",
        "cpp",
        "c_sharp",
        "ruby",
        "php",
        "kotlin",
        "scala",
        "bash",
    }
)


def language_for_path(path: str, first_line: str | None = None) -> str | None:
    """The language name for a path; "text" for anything not recognised.

    `first_line` lets a script without an extension be recognised by its shebang.
    The caller decides whether a file is text at all, so this never returns None for
    a path it is asked about; the `None` in the signature is for callers that pass "".
    """
    if not path:
        return None
    name = PurePosixPath(path).name
    if name in _FILENAMES:
        return _FILENAMES[name]
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if first_line and first_line.startswith("#!"):
        words = first_line[2:].split()
        if words:
            program = words[0].rsplit("/", 1)[-1]
            if program == "env" and len(words) > 1:
                program = words[1]
            if program in _SHEBANGS:
                return _SHEBANGS[program]
    return "text"


@cache
def get_parser(language: str) -> Parser:
    """A parser for `language`, built once per process (grammar loading is not free)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from tree_sitter_languages import get_parser as _load

        return _load(language)
