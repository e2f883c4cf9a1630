"""C, C++ and C#: declarators hide function names; preprocessor blocks nest code."""

from __future__ import annotations

from tree_sitter import Node

from indexer_core.chunking.spec import LanguageSpec, body_members, field_name, node_text

_NAME_TYPES = frozenset(
    {
        "identifier",
        "field_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
        "type_identifier",
        "template_function",
    }
)


def _declarator_name(node: Node, src: bytes) -> str:
    """Follow `declarator` fields (pointer, function, reference...) down to the name."""
    current: Node | None = node
    for _ in range(32):
        if current is None:
            break
        if current.type in _NAME_TYPES:
            return node_text(current, src)
        nxt = current.child_by_field_name("declarator")
        if nxt is None:
            nxt = next((c for c in current.named_children if c.type in _NAME_TYPES), None)
        current = nxt
    return "<anonymous>"


def _name(node: Node, src: bytes) -> str:
    if node.type in ("function_definition", "type_definition"):
        return _declarator_name(node.child_by_field_name("declarator") or node, src)
    if node.type in ("preproc_ifdef", "preproc_if"):
        cond = node.child_by_field_name("name") or node.child_by_field_name("condition")
        return node_text(cond, src) if cond is not None else "#if"
    if node.type == "linkage_specification":
        value = node.child_by_field_name("value")
        return "extern " + (node_text(value, src) if value is not None else "")
    return field_name(node, src)


def _members(node: Node) -> list[Node]:
    if node.type in ("preproc_ifdef", "preproc_if"):
        skip = {node.child_by_field_name("name"), node.child_by_field_name("condition")}
        return [c for c in node.named_children if c not in skip]
    if node.type == "linkage_specification":
        body = node.child_by_field_name("body")
        return body.named_children if body is not None and body.named_child_count else []
    return body_members(node)


_PREPROC = {"preproc_ifdef": "preproc", "preproc_if": "preproc"}
# A C header's `extern "C" {` (behind `#if defined(__cplusplus)`) parses as a linkage
# specification whose body is the rest of the file: a container, or every function and
# declaration in it was one long run of statements.
_C_CONTAINERS = {**_PREPROC, "linkage_specification": "namespace"}
_C_LEAVES = {
    "function_definition": "function",
    "struct_specifier": "struct",
    "union_specifier": "union",
    "enum_specifier": "enum",
    "type_definition": "typedef",
}

SPECS = {
    "c": LanguageSpec(containers=_C_CONTAINERS, leaves=_C_LEAVES, name=_name, members=_members),
    "cpp": LanguageSpec(
        containers={
            **_PREPROC,
            "class_specifier": "class",
            "struct_specifier": "struct",
            "union_specifier": "union",
            "namespace_definition": "namespace",
            "linkage_specification": "namespace",
        },
        leaves={
            "function_definition": "function",
            "enum_specifier": "enum",
            "type_definition": "typedef",
        },
        wrappers={"template_declaration": None},
        name=_name,
        members=_members,
    ),
    "c_sharp": LanguageSpec(
        containers={
            "class_declaration": "class",
            "struct_declaration": "struct",
            "interface_declaration": "interface",
            "record_declaration": "record",
            "namespace_declaration": "namespace",
        },
        leaves={
            "method_declaration": "method",
            "constructor_declaration": "constructor",
            "destructor_declaration": "method",
            "operator_declaration": "method",
            "enum_declaration": "enum",
        },
    ),
}
