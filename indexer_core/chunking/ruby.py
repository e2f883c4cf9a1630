"""Ruby: modules and classes hold methods; their bodies sit in `body_statement`."""

from __future__ import annotations

from tree_sitter import Node

from indexer_core.chunking.spec import LanguageSpec


def _members(node: Node) -> list[Node]:
    for child in node.named_children:
        if child.type == "body_statement":
            return child.named_children
    skip = {node.child_by_field_name("name"), node.child_by_field_name("superclass")}
    return [c for c in node.named_children if c not in skip]


SPECS = {
    "ruby": LanguageSpec(
        containers={"class": "class", "module": "module", "singleton_class": "class"},
        leaves={"method": "function", "singleton_method": "function"},
        members=_members,
    )
}
