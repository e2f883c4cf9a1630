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


# Targets that name the module, not the value: `module.exports = function parseArgs` is
# `parseArgs`; `exports.parse = function` keeps its target.
_EXPORT_OBJECTS = frozenset({"module.exports", "exports"})


def _assigned(node: Node, src: bytes) -> tuple[Node, str] | None:
    """The value and target of `target = value;` at statement level, through chains
    (`exports = module.exports = value`): the rightmost value, the innermost target."""
    expr = node.named_children[0] if node.named_child_count == 1 else None
    if expr is None or expr.type != "assignment_expression":
        return None
    for _ in range(8):
        value = expr.child_by_field_name("right")
        if value is None or value.type != "assignment_expression":
            break
        expr = value
    value, target = expr.child_by_field_name("right"), expr.child_by_field_name("left")
    if value is None or target is None:
        return None
    if target.type not in ("identifier", "member_expression"):
        return None
    return value, node_text(target, src)


def _own_name(value: Node, src: bytes) -> str | None:
    name = value.child_by_field_name("name")
    return node_text(name, src) if name is not None else None


def _function_assignment(node: Node, src: bytes) -> tuple[str, str] | None:
    """`proto.handle = function (...) {...}` (CommonJS modules, prototypes) is a function
    named by its target; without this a file of such assignments is one long module unit."""
    found = _assigned(node, src)
    if found is None or found[0].type not in _FUNCTION_VALUES:
        return None
    value, target = found
    if target in _EXPORT_OBJECTS:
        return "function", _own_name(value, src) or target
    return "function", target


def _bound_class(node: Node, src: bytes) -> tuple[Node, str] | None:
    """`module.exports = class CachePolicy {...}`, `exports.Router = class {...}` and
    `const Foo = class {...}` are classes whose methods are members, as in a declaration;
    otherwise a whole class was one run of module statements."""
    if node.type == "expression_statement":
        found = _assigned(node, src)
    elif node.type in ("lexical_declaration", "variable_declaration"):
        declarators = [c for c in node.named_children if c.type == "variable_declarator"]
        value = declarators[0].child_by_field_name("value") if len(declarators) == 1 else None
        name = declarators[0].child_by_field_name("name") if len(declarators) == 1 else None
        found = (value, node_text(name, src)) if value is not None and name is not None else None
    else:
        return None
    if found is None or found[0].type != "class":
        return None
    return found


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

# A TypeScript function's or method's overload signatures lead its implementation (they were
# runs of module statements, apart from the body they describe).
_LEADING = frozenset({"comment", "function_signature", "method_signature"})

_SPEC = LanguageSpec(
    containers=_CONTAINERS,
    leaves=_LEAVES,
    wrappers=_WRAPPERS,
    leading=_LEADING,
    extra=_extra,
    bound=_bound_class,
)

SPECS = {"javascript": _SPEC, "typescript": _SPEC, "tsx": _SPEC}
