"""PHP: classes, interfaces, traits and braced namespaces hold methods."""

from __future__ import annotations

from indexer_core.chunking.spec import LanguageSpec

SPECS = {
    "php": LanguageSpec(
        containers={
            "class_declaration": "class",
            "interface_declaration": "interface",
            "trait_declaration": "trait",
            "enum_declaration": "enum",
            "namespace_definition": "namespace",
        },
        leaves={"function_definition": "function", "method_declaration": "method"},
        # `if (!function_exists('foo')) { function foo() {...} }`: a definition, not a run.
        blocks=frozenset({"if_statement", "else_if_clause", "else_clause"}),
        bodies=frozenset({"compound_statement"}),
    )
}
