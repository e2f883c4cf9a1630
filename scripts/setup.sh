#!/usr/bin/env bash
# Create .venv and install the project. Without a GPU, torch is the CPU build; with one
# (nvidia-smi present, or CODE_INDEX_TORCH=cuda), the CUDA build from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  want=${CODE_INDEX_TORCH:-$(command -v nvidia-smi >/dev/null 2>&1 && echo cuda || echo cpu)}
  if [ "$want" = cuda ]; then
    python -m pip install -q "torch==2.13.0"
  elif python -m pip download -q --no-deps --no-index -d "$(mktemp -d)" "torch==2.13.0" >/dev/null 2>&1; then
    # A local wheel cache (pip's find-links) holds the CPU build: plain resolution takes it.
    python -m pip install -q "torch==2.13.0"
  else
    python -m pip install -q --retries 1 --timeout 20 "torch==2.13.0" \
      --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
  fi
fi
python -m pip install -q -e ".[dev,mcp,cluster]"
# Bytecode for this project's own modules, as pip writes it for every installed package: an
# editable install leaves it to the first import, which writes none where
# PYTHONDONTWRITEBYTECODE is set, and every command (and its step server) would compile
# ~75 modules again. Stale files are ignored: an edited module is compiled as before.
python -m compileall -q -j 0 orchestration indexer_core >/dev/null
# The cluster tests' broker (Debian's redis-server); Postgres is on the image. Best effort.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get install -y -qq redis-server >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq redis-server >/dev/null 2>&1; }) \
    || echo "set-up: redis-server not installed; tests/cluster will be skipped"
fi
echo "set-up done: $(python -c 'import torch; print("torch", torch.__version__)')"
