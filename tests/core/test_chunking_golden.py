"""Golden chunkings: one small sample per language, every chunk pinned.

A 100-token model (52 tokens for content once the header reserve is out) makes the
samples' classes too big to stay whole, so class splitting is exercised everywhere.
Rows are (start_line, end_line, kind, name, parent's name).
"""

from __future__ import annotations

import pytest

from indexer_core.chunking import chunk_text
from indexer_core.chunking.tokens import TokenCounter, load_token_counter
from tests.core.chunk_checks import check_invariants
from tests.core.chunk_samples import SAMPLES

GOLDEN: dict[str, list[tuple]] = {
    "python": [
        (1, 2, "module", "shapes.py", None),
        (5, 6, "class", "Circle", "shapes.py"),
        (8, 10, "method", "__init__", "Circle"),
        (12, 15, "method", "area", "Circle"),
        (18, 19, "function", "total_area", "shapes.py"),
    ],
    "javascript": [
        (1, 2, "module", "shapes.js", None),
        (4, 4, "class", "Circle", "shapes.js"),
        (5, 8, "method", "constructor", "Circle"),
        (10, 14, "method", "area", "Circle"),
        (16, 18, "function", "totalArea", "shapes.js"),
    ],
    "typescript": [
        (1, 1, "module", "shapes.ts", None),
        (3, 5, "interface", "Shape", "shapes.ts"),
        (7, 8, "class", "Circle", "shapes.ts"),
        (10, 12, "method", "constructor", "Circle"),
        (14, 18, "method", "area", "Circle"),
        (20, 22, "function", "totalArea", "shapes.ts"),
    ],
    "tsx": [
        (1, 3, "module", "Badge.tsx", None),
        (5, 5, "class", "Badge", "Badge.tsx"),
        (6, 8, "method", "describe", "Badge"),
        (10, 13, "method", "render", "Badge"),
        (15, 17, "function", "Counter", "Badge.tsx"),
    ],
    "java": [
        (1, 3, "module", "Circle.java", None),
        (5, 6, "class", "Circle", "Circle.java"),
        (8, 10, "constructor", "Circle", "Circle"),
        (12, 16, "method", "area", "Circle"),
        (18, 21, "method", "totalArea", "Circle"),
    ],
    "go": [
        (1, 6, "module", "circle.go", None),
        (8, 11, "struct", "Circle", "circle.go"),
        (13, 16, "method", "Circle.Area", "circle.go"),
        (18, 20, "method", "Circle.String", "circle.go"),
        (22, 28, "function", "TotalArea", "circle.go"),
    ],
    "rust": [
        (1, 2, "module", "shapes.rs", None),
        (4, 8, "struct", "Circle", "shapes.rs"),
        (10, 10, "impl", "Circle", "shapes.rs"),
        (11, 14, "method", "area", "Circle"),
        (16, 19, "method", "scaled", "Circle"),
        (21, 23, "function", "total_area", "shapes.rs"),
    ],
    "c": [
        (1, 2, "module", "shapes.c", None),
        (4, 7, "struct", "circle", "shapes.c"),
        (9, 12, "function", "circle_area", "shapes.c"),
        (14, 15, "function", "total_area (part 1/2)", "shapes.c"),
        (16, 20, "function", "total_area (part 2/2)", "shapes.c"),
    ],
    "cpp": [
        (1, 2, "module", "shapes.cpp", None),
        (4, 4, "namespace", "shapes", "shapes.cpp"),
        (6, 7, "class", "Circle", "shapes"),
        (8, 8, "method", "Circle", "Circle"),
        (10, 17, "method", "area", "Circle"),  # with the private field after it
        (19, 23, "function", "total_area", "shapes"),
        (25, 25, "namespace", "shapes", "shapes"),
    ],
    "c_sharp": [
        (1, 2, "module", "Circle.cs", None),
        (4, 5, "namespace", "Shapes", "Circle.cs"),
        (6, 8, "class", "Circle", "Shapes"),
        (10, 13, "constructor", "Circle", "Circle"),
        (15, 22, "method", "Area", "Circle"),
    ],
    "ruby": [
        (1, 2, "module", "shapes.rb", None),
        (4, 4, "module", "Shapes", "shapes.rb"),
        (5, 6, "class", "Circle", "Shapes"),
        (8, 11, "method", "initialize", "Circle"),
        (13, 17, "method", "area", "Circle"),
        (19, 22, "function", "total_area", "Shapes"),
    ],
    "php": [
        (1, 1, "module", "Circle.php", None),
        (3, 5, "namespace", "Shapes", "Circle.php"),  # with the `use` after it
        (7, 9, "class", "Circle", "Circle.php"),
        (11, 14, "method", "__construct", "Circle"),
        (16, 21, "method", "area", "Circle"),
        (23, 26, "function", "total_area", "Circle.php"),
    ],
    "kotlin": [
        (1, 3, "module", "Circle.kt", None),
        (5, 6, "class", "Circle", "Circle.kt"),
        (8, 11, "method", "area", "Circle"),
        (13, 16, "method", "scaled", "Circle"),
        (18, 20, "function", "totalArea", "Circle.kt"),
    ],
    "scala": [
        (1, 3, "module", "Circle.scala", None),
        (5, 6, "class", "Circle", "Circle.scala"),
        (8, 11, "method", "area", "Circle"),
        (13, 16, "method", "scaled", "Circle"),
        (18, 20, "object", "Shapes", "Circle.scala"),
    ],
    "bash": [
        (1, 3, "module", "build.sh", None),
        (5, 8, "function", "log", "build.sh"),
        (10, 14, "function", "build", "build.sh"),
        (16, 18, "module", "build.sh", "build.sh"),
    ],
}


@pytest.fixture(scope="module")
def small() -> TokenCounter:
    return TokenCounter(tokenizer=load_token_counter("all-MiniLM-L6-v2").tokenizer, max_tokens=100)


def test_every_language_has_a_golden() -> None:
    assert set(GOLDEN) == set(SAMPLES)


@pytest.mark.parametrize("language", sorted(GOLDEN))
def test_golden(language: str, small: TokenCounter) -> None:
    path, text = SAMPLES[language]
    spans = chunk_text(text, path, language, small)
    got = [
        (
            s.start_line,
            s.end_line,
            s.kind,
            s.label,
            spans[s.parent].name if s.parent is not None else None,
        )
        for s in spans
    ]
    assert got == GOLDEN[language]
    check_invariants(text, path, language, small, spans)


@pytest.mark.parametrize("language", sorted(GOLDEN))
def test_default_budget_keeps_samples_whole_units(language: str) -> None:
    counter = load_token_counter("all-MiniLM-L6-v2")
    path, text = SAMPLES[language]
    spans = chunk_text(text, path, language, counter)
    check_invariants(text, path, language, counter, spans)
    assert all(s.parts == 1 for s in spans)


def test_method_scope_and_parent_python(small: TokenCounter) -> None:
    path, text = SAMPLES["python"]
    spans = chunk_text(text, path, "python", small)
    area = next(s for s in spans if s.name == "area")
    assert area.scope == ("Circle",)
    assert spans[area.parent].kind == "class"
    assert spans[spans[area.parent].parent].kind == "module"
    assert area.content.startswith("    @property\n    def area")


def test_leading_comments_join_their_unit(small: TokenCounter) -> None:
    for language, needle in [("rust", "/// A circle"), ("go", "// Area is"), ("java", "/** The")]:
        path, text = SAMPLES[language]
        spans = chunk_text(text, path, language, small)
        assert any(s.content.lstrip().startswith(needle) for s in spans), language


CODEC = '''class Codec:
    """Encode and decode values of every kind."""

    def encode(self, value):
        return str(value)
    encode_all = encode

    # Decoding

    def decode(self, text):
        return int(text)

    # end of Codec


def parse(text):
    return Codec().decode(text)
'''


def test_small_gaps_join_a_neighbouring_unit(small: TokenCounter) -> None:
    """A stray statement ends the unit before it, a section comment opens the one after it.

    On their own they were one-line chunks named after the class (`encode_all = encode`,
    `# Decoding`) that mean nothing as search results.
    """
    spans = chunk_text(CODEC, "codec.py", "python", small)
    got = [(s.start_line, s.end_line, s.kind, s.name) for s in spans]
    assert got == [
        (1, 2, "class", "Codec"),
        (4, 6, "method", "encode"),  # with `encode_all = encode`
        (8, 13, "method", "decode"),  # with `# Decoding` before it and `# end of Codec` after it
        (16, 17, "function", "parse"),
    ]
    assert spans[1].content.endswith("encode_all = encode")
    assert spans[2].content.startswith("    # Decoding\n\n    def decode")
    check_invariants(CODEC, "codec.py", "python", small, spans)


def test_a_gap_too_big_to_join_stays_a_chunk(small: TokenCounter) -> None:
    table = "\n".join(f"    CODE_{i} = {i}  # the code for case number {i}" for i in range(4))
    text = CODEC.replace("    encode_all = encode\n", table + "\n")
    spans = chunk_text(text, "codec.py", "python", small)
    gap = next(s for s in spans if "CODE_0" in s.content)
    assert (gap.kind, gap.name) == ("class", "Codec")
    assert "def " not in gap.content
    check_invariants(text, "codec.py", "python", small, spans)


EXPRESS_STYLE = """var app = exports = module.exports = {};

app.init = function init() {
  this.cache = {};
  this.settings = {};
};

app.handle = function handle(req, res, callback) {
  var router = this._router;
  router.handle(req, res, callback);
};

exports.route = (path) => new Route(path);
"""


def test_function_assignments_are_functions(small: TokenCounter) -> None:
    """`app.handle = function ...` (CommonJS, prototypes) is a unit named by its target, not a
    stretch of module statements: an express file was one 500-line run of module parts."""
    spans = chunk_text(EXPRESS_STYLE, "application.js", "javascript", small)
    got = [(s.start_line, s.end_line, s.kind, s.name) for s in spans]
    assert (3, 6, "function", "app.init") in got
    assert (8, 11, "function", "app.handle") in got
    assert (13, 13, "function", "exports.route") in got
    check_invariants(EXPRESS_STYLE, "application.js", "javascript", small, spans)


C_HEADER = """#ifndef CODEC_H
#define CODEC_H

#if defined (__cplusplus)
extern "C" {
#endif

#define LIMIT 8   /* a comment that runs on
                     over a second line */

static int codec_add(int a, int b)
{
    return a + b;
}

static int codec_scale(int value, int factor)
{
    return value * factor;
}
"""  # (the file's closing `}` and `#endif`s left out: the grammar fails as on zstd's headers)


def test_functions_inside_a_parse_error_are_units(small: TokenCounter) -> None:
    """`extern "C" {` behind `#if` makes the C grammar wrap the rest of a header in one ERROR
    node; the functions in it are still units (zstd's headers were runs of module parts)."""
    from indexer_core.discovery.languages import get_parser

    root = get_parser("c").parse(C_HEADER.encode()).root_node
    assert any(node.type == "ERROR" for node in root.named_children)  # what this test is about
    spans = chunk_text(C_HEADER, "codec.h", "c", small)
    got = {(s.start_line, s.end_line, s.kind, s.name) for s in spans}
    assert {(11, 14, "function", "codec_add"), (16, 19, "function", "codec_scale")} <= got
    check_invariants(C_HEADER, "codec.h", "c", small, spans)


C_FULL_HEADER = (
    C_HEADER
    + """
#if defined (__cplusplus)
}
#endif
#endif /* CODEC_H */
"""
)


def test_functions_inside_extern_c_are_units(small: TokenCounter) -> None:
    """A whole header: the C grammar reads `extern "C" {` ... `}` as a linkage specification
    spanning the file; its functions are units, not one run of `preproc` statements."""
    spans = chunk_text(C_FULL_HEADER, "codec.h", "c", small)
    got = {(s.start_line, s.end_line, s.kind, s.name) for s in spans}
    assert {(11, 14, "function", "codec_add"), (16, 19, "function", "codec_scale")} <= got
    check_invariants(C_FULL_HEADER, "codec.h", "c", small, spans)


C_ATTRIBUTES = """#include "codec.h"

HINT_INLINE UNUSED_ATTR void
codec_store(int* out, int value, int count)
{
    while (count--) {
        *out++ = value;
    }
}

static int codec_next(int value)
{
    return value + 1;
}
"""


def test_function_after_attribute_macros_is_a_unit(small: TokenCounter) -> None:
    """Two unknown macros before a function's type parse as a declaration ending on the
    function's first row; the function takes that prefix in (zstd's `ZSTD_storeSeq` was a
    run of module statements, so a search for its name missed it)."""
    from indexer_core.discovery.languages import get_parser

    root = get_parser("c").parse(C_ATTRIBUTES.encode()).root_node
    kinds = [n.type for n in root.named_children]
    assert "declaration" in kinds or "ERROR" in kinds  # what this test is about
    spans = chunk_text(C_ATTRIBUTES, "codec.c", "c", small)
    got = {(s.start_line, s.end_line, s.kind, s.name) for s in spans}
    assert {(3, 9, "function", "codec_store"), (11, 14, "function", "codec_next")} <= got
    check_invariants(C_ATTRIBUTES, "codec.c", "c", small, spans)


COMMONJS_CLASS = """'use strict';

const helper = require('./helper');

module.exports = class CachePolicy {
  constructor(req, res) {
    this.req = req;
    this.res = res;
  }

  storable() {
    return !this.req.headers['cache-control'];
  }

  age() {
    let age = this.res.headers.age || 0;
    return age + helper.now();
  }
};

exports.Thing = class extends Base {
  run() {
    return 1;
  }
};

module.exports.parse = exports = module.exports = function parseArgs(argv) {
  return argv.slice(2);
};
"""


def test_classes_and_functions_assigned_to_exports_are_units(small: TokenCounter) -> None:
    """`module.exports = class CachePolicy {...}` is a class with its methods as members, as a
    declaration is; it was one run of module statements whose parts held no names. An exported
    function is known by its own name, an anonymous class by its target."""
    spans = chunk_text(COMMONJS_CLASS, "index.js", "javascript", small)
    got = [(s.start_line, s.end_line, s.kind, s.name, s.scope) for s in spans]
    assert (5, 5, "class", "CachePolicy", ()) in got
    assert (11, 13, "method", "storable", ("CachePolicy",)) in got
    assert (15, 19, "method", "age", ("CachePolicy",)) in got
    names = {(s.kind, s.name) for s in spans}
    assert ("class", "exports.Thing") in names
    assert ("function", "parseArgs") in names
    assert not any(s.kind == "module" and "class" in s.content for s in spans)
    check_invariants(COMMONJS_CLASS, "index.js", "javascript", small, spans)


PLATFORM_BLOCKS = '''import os
import sys

if sys.platform == "win32":
    def spawn(path, args):
        """Start a process on Windows."""
        return os.spawnv(os.P_WAIT, path, args)

    class Runner:
        def run(self):
            return 1
else:
    def spawn(path, args):
        """Start a process elsewhere."""
        pid = os.fork()
        return pid

try:
    from _speedups import fast_join
except ImportError:
    def fast_join(parts):
        """Join the parts slowly."""
        return "".join(parts)
'''


def test_definitions_inside_module_level_if_and_try_are_units() -> None:
    """`if sys.platform == ...: def spawn` and `except ImportError: def fast_join` define
    functions like a top-level `def`; the clause line opens the unit (os.py's `spawnv` and
    friends were parts of one module run)."""
    counter = load_token_counter("all-MiniLM-L6-v2")
    spans = chunk_text(PLATFORM_BLOCKS, "compat.py", "python", counter)
    got = [(s.start_line, s.end_line, s.kind, s.name, s.scope) for s in spans]
    assert got[0] == (1, 2, "module", "compat.py", ())
    assert (4, 7, "function", "spawn", ()) in got
    assert (9, 11, "class", "Runner", ()) in got
    assert any(g[2:] == ("function", "spawn", ()) and g[0] == 12 for g in got)  # with `else:`
    assert (20, 23, "function", "fast_join", ()) in got
    assert all(spans[s.parent].kind == "module" for s in spans[1:])
    check_invariants(PLATFORM_BLOCKS, "compat.py", "python", counter, spans)


def test_blocks_without_definitions_stay_statements(small: TokenCounter) -> None:
    text = 'if sys.platform == "win32":\n    SEP = "\\\\"\nelse:\n    SEP = "/"\n'
    spans = chunk_text(text, "sep.py", "python", small)
    assert [(s.kind, s.name) for s in spans] == [("module", "sep.py")]


PHP_POLYFILL = """<?php
require_once 'base.php';

if (!function_exists('str_contains')) {
    function str_contains($haystack, $needle) {
        return $needle === '' || strpos($haystack, $needle) !== false;
    }
}
"""


def test_php_function_inside_function_exists_guard_is_a_unit() -> None:
    counter = load_token_counter("all-MiniLM-L6-v2")
    spans = chunk_text(PHP_POLYFILL, "polyfill.php", "php", counter)
    got = [(s.start_line, s.end_line, s.kind, s.name) for s in spans]
    assert got == [(1, 2, "module", "polyfill.php"), (4, 8, "function", "str_contains")]
    check_invariants(PHP_POLYFILL, "polyfill.php", "php", counter, spans)


_TS_BODY = "\n".join(f"        this.total += this.weights[{i}] * key.length" for i in range(40))
TS_OVERLOADS = f"""import {{ Lambda }} from "./types"

export function onChange(value: Observable, listener: Lambda): Lambda
export function onChange<K>(value: Map<K, any>, key: K, listener: Lambda): Lambda
export function onChange(thing, arg2, arg3?): Lambda {{
    return addHook("change", thing, arg2, arg3)
}}

class Store {{
    get(key: string): string
    get(key: number): string
    get(key) {{
        return this.items[key]
    }}

    weigh(key) {{
{_TS_BODY}
    }}
}}
"""


def test_overload_signatures_lead_their_implementation() -> None:
    """TypeScript overload signatures belong to the implementation below them (they were
    module statements, and the function's chunk lacked its parameter types)."""
    counter = load_token_counter("all-MiniLM-L6-v2")
    spans = chunk_text(TS_OVERLOADS, "hooks.ts", "typescript", counter)
    got = {(s.start_line, s.end_line, s.kind, s.name) for s in spans}
    assert (3, 7, "function", "onChange") in got
    assert (10, 14, "method", "get") in got
    assert not any(s.kind == "module" and s.start_line >= 3 for s in spans)
    check_invariants(TS_OVERLOADS, "hooks.ts", "typescript", counter, spans)
