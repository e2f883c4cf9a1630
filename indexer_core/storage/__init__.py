"""Storage: the LanceDB tables and their idempotent writes (`tables`), per-partition locks
(`locking`), the repository registry, compaction (`housekeeping`) and table invariants
(`integrity`).
"""
