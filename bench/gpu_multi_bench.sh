#!/usr/bin/env bash
# One device call for multi-GPU training (repo root, on a CUDA machine with two GPUs): install the
# carried wheels, list the cards and their links, run doctor's checks, then the 1 vs 2 GPU bench.
#   bash bench/gpu_multi_bench.sh OUT_DIR [BENCH_SECONDS] [gpu_multi_bench.py arguments...]
# e.g. bash bench/gpu_multi_bench.sh "$OUT" 500 --only gpus_2_2x4 gpus_1_2x4
set -o pipefail
out=${1:-gpu-out}
seconds=${2:-540}
shift $(($# < 2 ? $# : 2))
mkdir -p "$out"
source bench/gpu_setup.sh
{ nvidia-smi -L; nvidia-smi topo -m; } > "$out/cards.txt" 2>&1
python3 -c '
from engine.doctor import diagnose
from engine.plan import plan_from_dict
for gpus in ("auto", [1]):
    print(f"training.gpus = {gpus}")
    for check in diagnose(plan_from_dict({"training": {"gpus": gpus}})):
        print(f"  {check.name}: {check.status}: {check.detail} | {check.hint}")
' > "$out/doctor.txt" 2>&1
timeout "$seconds" python3 bench/gpu_multi_bench.py --baseline .gpu-shared/baseline_unsloth.py \
  --out "$out" "$@" > "$out/bench.log" 2>&1
