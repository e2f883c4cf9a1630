"""Embedding: the model (loading, device, batching), where its files live, and the query
encoder that embeds search queries on ONNX Runtime without importing torch.

Nothing here is imported by the package itself, so `query_encoder` stays torch-free.
"""
