#!/usr/bin/env bash
# One device call: install the carried wheels, benchmark against the baseline, run the GPU tests.
# Usage (repo root, on the CUDA machine): bash bench/gpu_train_bench.sh BASELINE_PY OUT_DIR
set -o pipefail
baseline=${1:-../shared/gpu/baseline_unsloth.py}
out=${2:-gpu-out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       UNSLOTH_DISABLE_STATISTICS=1 TOKENIZERS_PARALLELISM=false \
       UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_compiled_cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/card.txt"
# The GPU tests first: they are the correctness check, and the bench's last variant is the
# one to lose if a call runs out of time.
python3 -m pytest -q -m gpu tests/engine 2>&1 | tee "$out/pytest_gpu.log"
python3 bench/gpu_train_bench.py --baseline "$baseline" --out "$out" 2>&1 | tee "$out/bench.log"
