#!/usr/bin/env bash
# One device call: install the carried wheels, then run the GPU tests and/or the bench.
# Usage (repo root, on the CUDA machine):
#   bash bench/gpu_train_bench.sh BASELINE_PY OUT_DIR [tests] [VARIANT ...]
# VARIANTs are gpu_train_bench.py's (baseline, raw_8x1, stillroom_default, stillroom_pad_off,
# stillroom_2x4, stillroom_t4, ...); ratios need `baseline` and `raw_8x1` in the same call.
# With nothing after OUT_DIR it runs the timed comparison (about 8 minutes). `tests` runs
# `pytest -m gpu` in the background, beside the variants: pair it only with variants whose
# speed is not compared (stillroom_t4 measures memory), never with the timed ones.
set -o pipefail
baseline=${1:-../shared/gpu/baseline_unsloth.py}
out=${2:-gpu-out}
shift 2 2>/dev/null
[ $# -eq 0 ] && set -- baseline raw_8x1 stillroom_default stillroom_pad_off
mkdir -p "$out"
source bench/gpu_setup.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/card.txt"
variants=()
for item in "$@"; do
  case $item in
    tests)
      # Two pytest processes at once: the training test, and chat/export/NVML.
      # Each with its own Unsloth compile folder: processes writing one at once could collide.
      UNSLOTH_COMPILE_LOCATION=/tmp/ucc-train python3 -m pytest -q -m gpu \
        tests/engine/test_train_gpu.py >"$out/pytest_train.log" 2>&1 &
      UNSLOTH_COMPILE_LOCATION=/tmp/ucc-chat python3 -m pytest -q -m gpu \
        tests/engine/test_chat_gpu.py tests/engine/test_gpu.py >"$out/pytest_chat.log" 2>&1 &
      ;;
    *) variants+=("$item") ;;
  esac
done
if [ ${#variants[@]} -gt 0 ]; then
  python3 bench/gpu_train_bench.py --baseline "$baseline" --out "$out" --variants "${variants[@]}" \
    2>&1 | tee "$out/bench.log"
fi
wait
