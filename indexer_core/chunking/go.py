"""Go: no containers; methods are top-level and named after their receiver type."""

from __future__ import annotations

from tree_sitter import Node

from indexer_core.chunking.spec import LanguageSpec, field_name, node_text


def _receiver_type(node: Node, src: bytes) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    for param in receiver.named_children:
        typ = param.child_by_field_name("type")
        if typ is not None:
            return node_text(typ, src).lstrip("*").split("[", 1)[0]
    return ""


def _name(node: Node, src: bytes) -> str:
    if node.type == "method_declaration":
        receiver = _receiver_type(node, src)
        name = field_name(node, src)
        return f"{receiver}.{name}" if receiver else name
    if node.type == "type_declaration":
        specs = [c for c in node.named_children if c.type in ("type_spec", "type_alias")]
        return ", ".join(field_name(s, src) for s in specs) or "<anonymous>"
    return field_name(node, src)


def _kind(node: Node, kind: str) -> str:
    if node.type == "type_declaration":
        specs = [c for c in node.named_children if c.type == "type_spec"]
        if len(specs) == 1:
            typ = specs[0].child_by_field_name("type")
            if typ is not None and typ.type == "struct_type":
                return "struct"
            if typ is not None and typ.type == "interface_type":
                return "interface"
    return kind


SPECS = {
    "go": LanguageSpec(
        containers={},
        leaves={
            "function_declaration": "function",
            "method_declaration": "method",
            "type_declaration": "type",
        },
        name=_name,
        kind_of=_kind,
    )
}
