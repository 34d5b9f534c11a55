"""Seconds per step of Stillroom's CPU training child, next to a bare PEFT loop on the same rows.

Trains the demo student (SmolLM2-135M-Instruct, found the way ``stillroom demo`` finds it,
without a network) with ``stillroom train`` on 8 rows of about 48 tokens: batch 8, LoRA
r=16 on all seven projections, fp32, the hf backend. Then the same rows go through a bare
transformers + PEFT loop (forward, backward, AdamW) in a child of its own. Both children
get the environment given here, so ``--omp-wait-policy ACTIVE`` brings back the spinning
OpenMP threads the training child used before it set ``PASSIVE`` itself. Prints one JSON
object.

Measured on the shared 2-core box (load average 10-14, other sessions training), 4 steps:
``stillroom train`` took 26 s and 97 s a step before the fix (torch's 2 OpenMP threads
spinning), 6.5-11.8 s after. The bare loop: 80-104 s a step with OpenMP's default waiting,
11-15 s with ``--omp-wait-policy PASSIVE``, 9-13 s with ``--threads 1``. So the training
child now costs no more than the bare loop; padding (to the longest row, not
max_seq_length), gradient checkpointing (CUDA only) and the collator were not the cause.

    python bench/cpu_train_bench.py [--cache .cache/stillroom] [--steps 4] [--omp-wait-policy ACTIVE] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.engine.training import run_dir_from, write_facts, write_plan  # noqa: E402


def bare_steps(plan_path: Path, steps: int, threads: int | None) -> list[float]:
    """The plan's first batch through plain PEFT, ``steps`` times; seconds per step."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.plan import load_plan
    from engine.train.dataset import prepare_rows

    if threads:
        torch.set_num_threads(threads)
    plan = load_plan(plan_path)
    rows = prepare_rows(plan, lambda event: None).rows[: plan.training.batch_size]
    model = AutoModelForCausalLM.from_pretrained(plan.student.model, dtype=torch.float32)
    lora = plan.lora
    model = get_peft_model(
        model,
        LoraConfig(r=lora.r, lora_alpha=lora.alpha, target_modules=list(lora.target_modules),
                   task_type="CAUSAL_LM"),
    )  # fmt: skip
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    width = max(len(r["input_ids"]) for r in rows)

    def padded(key: str, fill: int) -> torch.Tensor:
        return torch.tensor([r[key] + [fill] * (width - len(r[key])) for r in rows])

    ids, labels = padded("input_ids", 0), padded("labels", -100)
    mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"]))
                         for r in rows])  # fmt: skip
    model.train()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--omp-wait-policy", help="OMP_WAIT_POLICY for both children")
    parser.add_argument("--threads", type=int, help="torch threads of the bare loop")
    parser.add_argument("--cache", type=Path, help="Stillroom's cache (default: the user's)")
    parser.add_argument("--bare", type=Path, help=argparse.SUPPRESS)  # the bare loop's child
    args = parser.parse_args()
    if args.bare:
        print(json.dumps(bare_steps(args.bare, args.steps, args.threads)))
        return
    from engine.demo_student import find_demo_student

    student = find_demo_student(args.cache, network=False, say=print)
    if student.origin == "random":
        sys.exit("no SmolLM2 here: run `stillroom demo` once, or give --cache .cache/stillroom")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        plan = write_plan(folder, student.path, write_facts(folder, copies=2),
                          max_steps=args.steps, batch_size=8, learning_rate=2e-3,
                          save_steps=1000)  # fmt: skip
        load = os.getloadavg()[0]
        started = time.perf_counter()
        train = subprocess.run([sys.executable, "-m", "tui.cli", "train", str(plan)], env=env,
                               cwd=REPO, capture_output=True, text=True, check=True)  # fmt: skip
        wall = time.perf_counter() - started
        summary = json.loads((run_dir_from(train.stdout) / "summary.json").read_text())
        extra = ["--threads", str(args.threads)] if args.threads else []
        bare = subprocess.run([sys.executable, __file__, "--bare", str(plan), "--steps",
                               str(args.steps), *extra], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        bare_times = json.loads(bare.stdout.strip().splitlines()[-1])
    print(json.dumps({
        "student": student.label,
        "omp_wait_policy": args.omp_wait_policy or "(the child's own)",
        "load_average_1min": round(load, 1),
        "stillroom_step_s_median": summary["step_s_median"],
        "stillroom_wall_s": round(wall, 1),
        "bare_step_s": [round(t, 2) for t in bare_times],
        "bare_step_s_median": round(statistics.median(bare_times[1:] or bare_times), 2),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
