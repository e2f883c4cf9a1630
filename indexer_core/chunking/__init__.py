"""Split a file's text into chunks that follow the code's units and fit the model.

Public entry point: `chunk_text`. One module per family of languages holds the tree-sitter
node types that make units; `splitter` holds the one shared algorithm that turns units into
chunks within the token budget.
"""
