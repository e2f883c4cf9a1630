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
  else
    # A CPU wheel from the local wheel cache when there is one, else PyTorch's CPU index.
    python -m pip install -q --no-index "torch==2.13.0" 2>/dev/null \
      || python -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
python -m pip install -q -e ".[dev,mcp]"
echo "set-up done: $(python -c 'import torch; print("torch", torch.__version__)')"
