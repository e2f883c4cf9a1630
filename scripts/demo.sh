#!/usr/bin/env bash
# Set up, index a repository through the Dagster job, then search it.
# usage: scripts/demo.sh [PATH] [QUERY]   (defaults: this project, a sample query)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
target=${1:-.}
query=${2:-"replace a file's rows in one commit"}
code-index index "$target"
code-index search "$query" -k 5
