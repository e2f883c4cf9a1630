"""Indexing: the units of work the orchestration runs, and what decides they are needed.

- `settings`: what decides the index's content (model, shards, limits) and the chunker's identity;
- `chunk_step`: one partition's files -> chunks, in one commit per table;
- `manifest`: the `files` rows and the data versions derived from them;
- `embed_step` and `embed_worker`: one partition's chunks -> vectors, and the long-lived
  worker that writes one partition while it encodes the next;
- `staleness`: the one answer to "which shards differ from the index" (sensor, CLI, status, MCP);
- `partitioning` and `watching`: shard of a path, data versions, and inotify watches.
"""
