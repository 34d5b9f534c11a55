#!/usr/bin/env bash
# One device call (repo root, a CUDA machine): runs of bench/gpu_multi_bench.py in turn, each a
# tag and the environment it trains in, so that a setting's effect on speed is measured within
# one lease. First the host's CPU contention (bench/host_contention.py), which bounds
# host-bound steps.
#   bash bench/gpu_env_compare.sh OUT_DIR STEPS "TAG [KEY=VALUE ...]" ["TAG [KEY=VALUE ...]" ...]
# e.g. bash bench/gpu_env_compare.sh "$OUT" 30 gpus_1_2x4 "gpus_1_2x4 OMP_WAIT_POLICY=PASSIVE"
# DDP options and CPU pinning go through bench/rank_env (its docstring says how), e.g.
#   "gpus_2_2x4 PYTHONPATH=$PWD/bench/rank_env:/tmp/site:$PWD BENCH_PIN_CPUS=2,10"
set -o pipefail
out=$1 steps=$2
shift 2
mkdir -p "$out"
source bench/gpu_setup.sh
python3 bench/host_contention.py > "$out/host_contention.json" 2>&1
i=0
for variant in "$@"; do
  i=$((i + 1))
  read -r tag env <<< "$variant"
  # shellcheck disable=SC2086 - env is a list of KEY=VALUE words
  python3 bench/gpu_multi_bench.py --baseline .gpu-shared/baseline_unsloth.py \
    --out "$out/$i" --only "$tag" --steps "$steps" ${env:+--env $env} > "$out/$i.log" 2>&1
  python3 - "$out/$i/results.json" "$tag" "$env" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1])).get(sys.argv[2], {})
keys = ("sec_per_step_mean", "tokens_per_s_nonpad", "loss_last10_mean", "device", "error")
print(json.dumps({"tag": sys.argv[2], "env": sys.argv[3] or "default", **{k: run.get(k) for k in keys}}))
EOF
done | tee "$out/compare.jsonl"
