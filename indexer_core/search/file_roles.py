"""What a file is for, from its path and language: code, or a test, an example, vendored or
generated code, documentation, configuration.

Search ranks code first for a code question, so it needs to know which files are not the
code itself; a query that names the role (`tests for the parser`, `readme install`) keeps
those files at full weight. Only general conventions across ecosystems are used, never the
names of particular projects.
"""

from __future__ import annotations

import re
from functools import lru_cache

from indexer_core.search.name_words import query_words

CODE = "code"
TEST = "test"
EXAMPLE = "example"
VENDOR = "vendor"
GENERATED = "generated"
DOCS = "docs"
CONFIG = "config"

_TEST_DIRS = frozenset(
    {"test", "tests", "__tests__", "spec", "specs", "testing", "testdata", "fixtures", "e2e"}
)
_EXAMPLE_DIRS = frozenset(
    {"example", "examples", "demo", "demos", "sample", "samples", "benchmark", "benchmarks"}
)
_VENDOR_DIRS = frozenset(
    {"vendor", "vendored", "third_party", "thirdparty", "third-party", "node_modules", "extern"}
)
_GENERATED_DIRS = frozenset({"generated", "__generated__", "dist"})
_TEST_FILE = re.compile(
    r"^(test_.*\.py|.*_test\.(py|go|rs|c|cc|cpp|exs?)|conftest\.py|.*\.(test|spec)\.[cm]?[jt]sx?"
    r"|.*_spec\.rb|.*_test\.rb|.*Tests?\.(java|kt|scala|cs|swift)|.*Spec\.(scala|kt|groovy))$"
)
_GENERATED_FILE = re.compile(
    r"^(.*\.pb\.go|.*_pb2(_grpc)?\.py|.*[._]generated\.\w+|.*\.g\.dart|.*\.min\.js)$"
)
_DOC_SUFFIXES = (".md", ".markdown", ".rst", ".txt", ".adoc", ".org")
_DOC_LANGUAGES = frozenset({"markdown", "rst", "text"})
_CONFIG_SUFFIXES = (
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".xml",
    ".properties",
    ".lock",
)

# Query words (stemmed, as `query_words` gives them) that ask for a role by name.
ASKS_FOR = {
    TEST: frozenset({"test", "tests", "testing", "spec", "unittest", "fixture", "mock"}),
    EXAMPLE: frozenset({"example", "exampl", "demo", "sample", "benchmark", "usage"}),
    VENDOR: frozenset({"vendor", "vendored", "third"}),
    GENERATED: frozenset({"generat", "generated", "protobuf"}),
    DOCS: frozenset(
        {"doc", "docs", "documentation", "readme", "guide", "tutorial", "changelog", "manual"}
    ),
    CONFIG: frozenset(
        {"config", "configuration", "setting", "yaml", "json", "toml", "manifest", "package"}
    ),
}


@lru_cache(maxsize=65536)
def file_role(path: str, language: str = "") -> str:
    """The role of a repository-relative path (see the module docstring)."""
    parts = path.lower().split("/")
    name, dirs = parts[-1], parts[:-1]
    if language in _DOC_LANGUAGES or name.endswith(_DOC_SUFFIXES):
        return DOCS
    if name.endswith(_CONFIG_SUFFIXES):
        return CONFIG
    if any(d in _VENDOR_DIRS for d in dirs):
        return VENDOR
    if any(d in _GENERATED_DIRS for d in dirs) or _GENERATED_FILE.match(path.split("/")[-1]):
        return GENERATED
    if any(d in _TEST_DIRS for d in dirs) or _TEST_FILE.match(path.split("/")[-1]):
        return TEST
    if any(d in _EXAMPLE_DIRS for d in dirs):
        return EXAMPLE
    return CODE


def asked_roles(query: str) -> frozenset[str]:
    """The roles a query names (`how are the parser tests set up` -> test)."""
    words = query_words(query) | {w.lower() for w in re.findall(r"[A-Za-z]+", query)}
    return frozenset(role for role, names in ASKS_FOR.items() if words & names)
