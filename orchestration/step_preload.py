"""What the forkserver imports once, so each step process forked from it starts warm.

Step processes of the index job fork from a server that has imported the code location
(dagster, lancedb, tree-sitter, this package), instead of each spawning and importing it
all again. Never import torch or touch CUDA here: the embedding consumer loads the model
in its own process.

lancedb warns on every fork that its async runtime was reset and that "a small chance of
deadlock remains if other state was mid-operation at fork time". The server forks only
while idle, never in the middle of a LanceDB call (it makes none), so that warning would
only repeat itself in every step's output; it is silenced for step processes alone.
"""

import warnings

import orchestration.definitions  # noqa: F401 - imported for its side effect: a warm server

warnings.filterwarnings(
    "ignore", message="lancedb fork support is experimental", category=RuntimeWarning
)
