"""JavaScript, TypeScript and TSX share one grammar family."""

from __future__ import annotations

from tree_sitter import Node

from indexer_core.chunking.spec import LanguageSpec, node_text

_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function", "function_expression", "generator_function"}
)


def _function_binding(node: Node, src: bytes) -> tuple[str, str] | None:
    """`const f = () => {...}` is a function in all but syntax."""
    declarators = [c for c in node.named_children if c.type == "variable_declarator"]
    if len(declarators) != 1:
        return None
    value = declarators[0].child_by_field_name("value")
    name = declarators[0].child_by_field_name("name")
    if value is None or name is None or value.type not in _FUNCTION_VALUES:
        return None
    return "function", node_text(name, src)


def _function_assignment(node: Node, src: bytes) -> tuple[str, str] | None:
    """`proto.handle = function (...) {...}` (CommonJS modules, prototypes) is a function
    named by its target; without this a file of such assignments is one long module unit."""
    expr = node.named_children[0] if node.named_child_count == 1 else None
    if expr is None or expr.type != "assignment_expression":
        return None
    value, target = expr.child_by_field_name("right"), expr.child_by_field_name("left")
    if value is None or target is None or value.type not in _FUNCTION_VALUES:
        return None
    if target.type not in ("identifier", "member_expression"):
        return None
    return "function", node_text(target, src)


def _extra(node: Node, src: bytes) -> tuple[str, str] | None:
    if node.type in ("lexical_declaration", "variable_declaration"):
        return _function_binding(node, src)
    if node.type == "expression_statement":
        return _function_assignment(node, src)
    return None


_CONTAINERS = {
    "class_declaration": "class",
    "abstract_class_declaration": "class",
    "class": "class",
    "interface_declaration": "interface",
    "internal_module": "namespace",
    "module": "module",
}
_LEAVES = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "method_definition": "method",
    "enum_declaration": "enum",
}
_WRAPPERS = {"export_statement": "declaration", "ambient_declaration": None}

_SPEC = LanguageSpec(
    containers=_CONTAINERS,
    leaves=_LEAVES,
    wrappers=_WRAPPERS,
    extra=_extra,
)

SPECS = {"javascript": _SPEC, "typescript": _SPEC, "tsx": _SPEC}
