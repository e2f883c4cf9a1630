"""The data a language family supplies to the shared splitter: which nodes are units.

A *container* (class, impl, namespace, ...) may hold member units; a *leaf* (function,
method, struct without methods, ...) never does. Everything else is a plain statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tree_sitter import Node

# Container kinds whose function members are reported as methods.
METHOD_PARENTS = frozenset(
    {"class", "struct", "interface", "impl", "trait", "object", "record", "enum", "union"}
)


def node_text(node: Node, src: bytes) -> str:
    return src[node.start_byte : node.end_byte].decode("utf-8", "replace")


def field_name(node: Node, src: bytes) -> str:
    """The text of the `name` field, or of the first identifier-like child."""
    name = node.child_by_field_name("name")
    if name is None:
        for child in node.named_children:
            if child.type.endswith("identifier") or child.type in ("constant", "word", "name"):
                name = child
                break
    return node_text(name, src) if name is not None else "<anonymous>"


def body_members(node: Node) -> list[Node]:
    """The named children of the `body` field: where most grammars keep members."""
    body = node.child_by_field_name("body")
    return body.named_children if body is not None else []


@dataclass(frozen=True)
class LanguageSpec:
    """Node types of one language; the functions handle grammars' irregular shapes."""

    containers: Mapping[str, str]
    leaves: Mapping[str, str]
    # Node types that wrap a unit (decorators, `export`, templates) -> field of the wrapped node
    # (None: the last named child).
    wrappers: Mapping[str, str | None] = field(default_factory=dict)
    # Comments and attributes directly above a unit belong to it.
    leading: frozenset[str] = frozenset({"comment"})
    name: Callable[[Node, bytes], str] = field_name
    members: Callable[[Node], list[Node]] = body_members
    # Optional: a unit (kind, name) for node types that are units only in some shapes.
    extra: Callable[[Node, bytes], tuple[str, str] | None] | None = None
    # Optional: a kind that depends on the node (e.g. Kotlin's `interface` keyword).
    kind_of: Callable[[Node, str], str] | None = None
    # Optional: for a statement that binds a class (`module.exports = class X {...}`), the class
    # node and the name it is bound to (used when the class has none of its own).
    bound: Callable[[Node, bytes], tuple[Node, str] | None] | None = None
    # Statements and clauses that are opened when they hold units (Python's module-level
    # `if sys.platform == ...:` or `try: ... except ImportError:`), so the definitions in them are
    # units like top-level ones; their keywords and condition open the unit that follows.
    blocks: frozenset[str] = frozenset()
    # The body node types of those statements, whose named children are the statements.
    bodies: frozenset[str] = frozenset()
