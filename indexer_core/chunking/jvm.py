"""Java, Kotlin and Scala: classes, objects and traits holding methods."""

from __future__ import annotations

from tree_sitter import Node

from indexer_core.chunking.spec import LanguageSpec, body_members, field_name

_JAVA_COMMENTS = frozenset({"line_comment", "block_comment", "comment"})


def _java_members(node: Node) -> list[Node]:
    """Enum bodies keep their methods one level down, in `enum_body_declarations`."""
    members = []
    for child in body_members(node):
        if child.type == "enum_body_declarations":
            members.extend(child.named_children)
        else:
            members.append(child)
    return members


def _kotlin_members(node: Node) -> list[Node]:
    for child in node.named_children:
        if child.type in ("class_body", "enum_class_body"):
            return child.named_children
    return []


def _kotlin_kind(node: Node, kind: str) -> str:
    if node.type == "class_declaration":
        for child in node.children:
            if child.type == "interface":
                return "interface"
            if child.type == "enum":
                return "enum"
    return kind


def _kotlin_name(node: Node, src: bytes) -> str:
    if node.type == "companion_object":
        for child in node.named_children:
            if child.type == "type_identifier":
                return field_name(node, src)
        return "companion object"
    return field_name(node, src)


SPECS = {
    "java": LanguageSpec(
        containers={
            "class_declaration": "class",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "record_declaration": "record",
            "annotation_type_declaration": "interface",
        },
        leaves={"method_declaration": "method", "constructor_declaration": "constructor"},
        leading=_JAVA_COMMENTS,
        members=_java_members,
    ),
    "kotlin": LanguageSpec(
        containers={
            "class_declaration": "class",
            "object_declaration": "object",
            "companion_object": "object",
        },
        leaves={"function_declaration": "function", "secondary_constructor": "constructor"},
        leading=frozenset({"comment", "line_comment", "multiline_comment"}),
        name=_kotlin_name,
        members=_kotlin_members,
        kind_of=_kotlin_kind,
    ),
    "scala": LanguageSpec(
        containers={
            "class_definition": "class",
            "object_definition": "object",
            "trait_definition": "trait",
            "enum_definition": "enum",
        },
        leaves={"function_definition": "function"},
        leading=frozenset({"comment", "block_comment"}),
    ),
}
