"""Rust: impl blocks and traits hold methods; attributes and doc comments lead items."""

from __future__ import annotations

from tree_sitter import Node

from indexer_core.chunking.spec import LanguageSpec, field_name, node_text


def _name(node: Node, src: bytes) -> str:
    if node.type == "impl_item":
        typ = node.child_by_field_name("type")
        trait = node.child_by_field_name("trait")
        name = node_text(typ, src) if typ is not None else "<anonymous>"
        return f"{node_text(trait, src)} for {name}" if trait is not None else name
    return field_name(node, src)


SPECS = {
    "rust": LanguageSpec(
        containers={"impl_item": "impl", "trait_item": "trait", "mod_item": "module"},
        leaves={
            "function_item": "function",
            "function_signature_item": "function",
            "struct_item": "struct",
            "enum_item": "enum",
            "union_item": "union",
            "macro_definition": "macro",
        },
        leading=frozenset({"line_comment", "block_comment", "attribute_item"}),
        name=_name,
    )
}
