#!/usr/bin/env bash
# The GPU check, run by the main engineer on the lent machine in ONE call (under 8 minutes):
#   device run, carry [".whl"], timeout_s 540:  bash bench/gpu_check.sh
# Needs .whl/site.tar.xz from bench/fetch_gpu_wheels.sh (run here first). Writes into $OUT:
# gpu_check.log, gpu.json, gpu.md, gpu_timeline.png, host_tokenize.{json,md} (partial results
# land too).
set -u
OUT=${OUT:-$PWD/bench/results/gpu}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
echo "== $(date -u) on $(hostname), $(nproc) cores"
nvidia-smi || echo "nvidia-smi failed"
mkdir -p /tmp/site
timeout 120 tar -xJf .whl/site.tar.xz -C /tmp/site || { echo "unpacking .whl/site.tar.xz failed"; exit 1; }
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
echo "== unpacked in $SECONDS s"
timeout 120 python3 -m bench.gpu_prepare || { echo "prepare failed"; exit 1; }
echo "== prepared in $SECONDS s"
# Bare encode (fp16, batch from GPU memory) on 20k chunk texts, then the Dagster job end to end
# on 60 MB of the machine's own site-packages: 16 chunk workers, 64 partitions.
timeout -k 15 ${GPU_BENCH_TIMEOUT:-400} python3 -m bench run gpu --corpus site-packages \
  --workers 16 --shards 64 --e2e-mb ${GPU_E2E_MB:-60} --texts ${GPU_TEXTS:-20000} \
  --out "$OUT" --stem gpu --workdir /tmp/bench-gpu
echo "== exit $? after $SECONDS s"
# The host side alone on this machine's cores: the model's preprocess against fast_features.
timeout -k 5 60 python3 -m bench.host_tokenize --tree /tmp/site/sentence_transformers \
  --rounds 2 --out "$OUT"
echo "== host_tokenize exit $? after $SECONDS s"
ls -la "$OUT"
