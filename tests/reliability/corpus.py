"""A hostile repository, generated on demand: every kind of file that breaks indexers.

`build_corpus` writes it and returns what each path must become: "indexed", or the skip
reason it must be listed with. Files are generated, never committed, so the 50 MB ones
cost nothing in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from indexer_core.discovery import skip_reasons

INDEXED = "indexed"

# One broken file per supported language: unclosed blocks, stray tokens, half statements.
SYNTAX_ERRORS: dict[str, str] = {
    "broken.py": "def f(:\n    return [1, 2\nclass :\n    pass\n",
    "broken.js": "function f( {\n  return {a: 1,, };\n}}\nconst = ;\n",
    "broken.ts": "interface A { x: number;\nfunction g(a: ): {\n  let x: = 1\n",
    "broken.tsx": "const C = () => <div><span></div>;\nexport default function ( {\n",
    "broken.java": "public class A {\n  void f( {\n    int x = ;\n  }\n",
    "broken.go": "package main\nfunc f( {\n\tx := \n}\n}}\n",
    "broken.rs": "fn f( -> {\n    let x = ;\n}\nimpl for {\n",
    "broken.c": "int f( {\n  return 1 +;\n}\nstruct {\n",
    "broken.cpp": "template<class T class A {\n  void f() { int x = ; }\n};;}\n",
    "broken.cs": "namespace N { class A { void F( { var x = ; } }\n",
    "broken.rb": "def f(\n  if x\n    puts 'a'\nclass\n",
    "broken.php": "<?php\nfunction f( {\n  $x = ;\n}\nclass {\n",
    "broken.kt": "fun f( {\n  val x = \n}\nclass {\n",
    "broken.scala": "object A {\n  def f( = {\n    val x = \n}\n",
    "broken.sh": "if [ -f x ]; then\n  echo 'unterminated\nfor in do\n",
}

# File names built to break shells, SQL filters, JSON and path handling.
ODD_NAMES = [
    "quote'single.py",
    'quote"double.py',
    "back\\slash.py",
    "with space.py",
    "new\nline.py",
    "-leading-dash.py",
    "--help.py",
    "non-ascii-é中文.py",
    "'; DROP TABLE chunks; --.py",
    "emoji-\U0001f600.py",
]


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build_corpus(root: Path, outside: Path, big: bool = True) -> dict[str, str]:
    """Write the hostile corpus under `root` (and its symlink targets under `outside`).

    `big` adds the 50 MB minified line and the 5 MB single function. Returns path -> expected
    outcome. Callers index it with `max_file_bytes` above 50 MB (see `LIMIT`), so large files
    are decoded and chunked, not skipped by size.
    """
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}

    def put(rel: str, data: bytes | str, outcome: str = INDEXED) -> None:
        _write(root, rel, data.encode() if isinstance(data, str) else data)
        expected[rel] = outcome

    put("ok.py", "def ok():\n    return 1\n")
    # Binary, including behind source extensions.
    put("bin/elf.py", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 16, skip_reasons.BINARY)
    put(
        "bin/image.js",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(4096),
        skip_reasons.BINARY,
    )
    put("bin/random.bin", b"\x00" + os.urandom(8192), skip_reasons.BINARY)
    put("bin/late_nul.c", b"int x;\n" * 2000 + b"\x00\x00", INDEXED)  # NUL after the sniff window
    # Encodings.
    put("enc/latin1.py", b"name = 'caf\xe9'\n")
    put("enc/invalid_utf8.py", b"x = '\xff\xfe\xfd'\n\xc3\x28 = 1\n")
    put(
        "enc/mixed.js",
        "const a = 'é';\n".encode()
        + "const b = 'é';\n".encode("latin-1")
        + "const c = 'ü';\n".encode("cp1252"),
    )
    put("enc/utf16.py", "x = 'utf-16 text'\n".encode("utf-16"))  # with its BOM
    put("enc/utf16be_nobom.py", "y = 1\n".encode("utf-16-be"), skip_reasons.BINARY)  # NULs, no BOM
    put("enc/utf8_bom.py", b"\xef\xbb\xbfdef bom():\n    return 'bom'\n")
    put("enc/utf32.py", "z = 3\n".encode("utf-32"))
    # Line endings.
    put("eol/crlf.py", b"def f():\r\n    return 1\r\n")
    put("eol/lone_cr.py", b"def g():\r    return 2\r")
    put("eol/mixed.js", b"function a() {\r\n  return 1;\n}\rfunction b() {}\n")
    # Size and shape.
    if big:
        put("big/minified.js", b"var a=1;" * (50 * 1024 * 1024 // 8), skip_reasons.MINIFIED)
        body = b"".join(
            b"    v%d = compute(v%d, %d) + offset\n" % (i, i - 1, i) for i in range(1, 150_000)
        )
        put("big/one_function.py", b"def huge(offset):\n    v0 = 0\n" + body + b"    return v0\n")
    put("deep/nested.py", "x = " + "[\n" * 10_000 + "1" + "\n]" * 10_000 + "\n")
    put("deep/nested.js", "function f() {\n" + "{\n" * 10_000 + "x();\n" + "}\n" * 10_000 + "}\n")
    put("deep/nested.c", "int f() {\n" + "if (a) {\n" * 10_000 + "}\n" * 10_000 + "}\n")
    # Empty and comment-only.
    put("empty/empty.py", b"")
    put("empty/empty.rs", b"")
    put("empty/only_newlines.go", b"\n\n\n")
    put("comments/only.py", "# only\n# comments\n" * 50)
    put("comments/only.c", "/* a block\n   comment */\n// and a line\n" * 50)
    put("comments/only.rb", "=begin\ndoc\n=end\n# more\n")
    for rel, text in SYNTAX_ERRORS.items():
        put(f"syntax/{rel}", text)
    for name in ODD_NAMES:
        put(f"names/{name}", f"def odd():\n    return {name!r}\n")
    # A name that is not UTF-8 at all: stored under a printable form, skipped.
    bad = os.fsencode(root / "names") + b"/bad-\xff-name.py"
    with open(bad, "wb") as handle:
        handle.write(b"x = 1\n")
    expected["names/bad-\\udcff-name.py"] = skip_reasons.BAD_NAME
    # Symlinks: a loop, a dangling one, ones pointing outside (at a FIFO and a secret).
    (root / "links").mkdir()
    os.symlink("loop_b", root / "links/loop_a")
    os.symlink("loop_a", root / "links/loop_b")
    expected["links/loop_a"] = expected["links/loop_b"] = skip_reasons.SYMLINK_LOOP
    os.mkfifo(outside / "fifo")
    (outside / "secret.py").write_text("OUTSIDE_SECRET_MARKER = 1\n")
    os.symlink(outside / "fifo", root / "links/to_fifo.py")
    os.symlink(outside / "secret.py", root / "links/to_secret.py")
    os.symlink(outside, root / "links/to_dir")
    os.symlink("/nonexistent/target.py", root / "links/dangling.py")
    for rel in ("links/to_fifo.py", "links/to_secret.py", "links/to_dir", "links/dangling.py"):
        expected[rel] = skip_reasons.SYMLINK_OUTSIDE
    os.symlink("../ok.py", root / "links/inside.py")
    expected["links/inside.py"] = skip_reasons.SYMLINK
    os.mkfifo(root / "fifo_inside.py")
    expected["fifo_inside.py"] = skip_reasons.NOT_REGULAR
    # Files that change under the run (the test arranges the change).
    put("race/vanishes.py", "def soon_gone():\n    return 0\n", skip_reasons.VANISHED)
    put("race/becomes_dir.py", "def soon_a_dir():\n    return 0\n", skip_reasons.NOT_REGULAR)
    put("race/swap.py", "def swapped_later():\n    return 0\n")
    return expected


LIMIT = 64 * 1024 * 1024  # max_file_bytes for the corpus: the 50 MB file must reach the decoder
