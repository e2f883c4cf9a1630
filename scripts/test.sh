#!/usr/bin/env bash
# The test command: set up (idempotent), then run the whole suite. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m ruff check .
python -m pytest -q -p no:cacheprovider --durations=15 "$@"
