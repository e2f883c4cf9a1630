"""The Dagster code location of the code index."""
