"""Plain-Python core of the code index: discovery, hashing, chunking, embedding, storage, search.

Nothing in this package imports Dagster, so every part can be tested and benchmarked alone.
"""
