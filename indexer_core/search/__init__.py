"""Search: vector, full-text and hybrid queries over the index (`query`), how rankings are
fused (`ranking`), identifier matching (`names`), the in-memory chunk catalogue (`catalog`,
`row_ids`) and the indexes built at index time (`indexes`).
"""
