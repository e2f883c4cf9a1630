"""bench/retrieval_eval.py's Java set: Javadoc becomes the query, the method is the answer."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import retrieval_eval

_JAVA = """package java.util;

/**
 * A class comment stays with no query.
 */
public class Bag<E> {
    /**
     * Returns the number of elements in this bag.
     *
     * @return the size
     */
    public int size() {
        return count;
    }

    /**
     * Adds {@code e} to this bag, as {@link #add(Object, int) add(e, 1)} does.
     * More text that is not the first sentence.
     */
    @Override
    @SuppressWarnings("unchecked")
    public <T extends E> boolean add(T e) {
        if (e == null) {
            throw new NullPointerException();
        }
        return add(e, 1);
    }

    /**
     * An abstract method has no body and no query.
     */
    abstract void trim(int max);

    /** Builds an empty bag. */
    public Bag() {
        this.count = 0;
    }
}
"""


def test_javadoc_of_methods_and_constructors_becomes_queries():
    kept, spans = retrieval_eval.strip_java(_JAVA)
    text = "\n".join(kept)
    assert "Returns the number" not in text and "Builds an empty" not in text  # docs gone
    assert "A class comment" in text and "An abstract method" in text  # no method body
    queries = {q: kept[s - 1 : e] for q, s, e in spans}
    assert list(queries) == [
        "Returns the number of elements in this bag.",
        "Adds e to this bag, as add(e, 1) does.",
        "Builds an empty bag.",
    ]
    size, add, ctor = queries.values()
    assert size[0].strip() == "public int size() {" and size[-1].strip() == "}"
    assert add[0].strip().startswith("public <T extends E> boolean add(T e)")
    assert add[-1].strip() == "}" and len(add) == 6
    assert ctor[0].strip() == "public Bag() {" and len(ctor) == 3


def test_under_keeps_the_sample_inside_one_directory(tmp_path, monkeypatch):
    root = tmp_path / "lib"
    for rel in ("email/a.py", "email/mime/b.py", "json/c.py"):
        path = root / rel
        path.parent.mkdir(parents=True)
        body = "\n\n".join(
            f'def f{i}(x):\n    """Return the value of x plus {i} for this test."""\n'
            f"    y = x + {i}\n    return y\n"
            for i in range(40)
        )
        path.write_text(body)

    def files():
        return sorted(root.rglob("*.py")), root

    monkeypatch.setitem(retrieval_eval.LANGUAGES, "python", (files, retrieval_eval.strip_python))
    out = tmp_path / "tree"
    queries = retrieval_eval.build_tree("python", out, 10, 500, random.Random(7), "email")
    assert {q.path for q in queries} == {"email/a.py", "email/mime/b.py"}
    assert not (out / "json").exists()
    everything = retrieval_eval.build_tree("python", tmp_path / "all", 10, 500, random.Random(7))
    assert {q.path.split("/")[0] for q in everything} == {"email", "json"}
