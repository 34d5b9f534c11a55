#!/usr/bin/env python3
"""Stillroom's unsloth backend against the reference Unsloth notebook baseline, same card, same call.

Builds (through the baseline script itself) a random-init student with the exact
Qwen2.5-1.5B-Instruct architecture and its 4000 synthetic Alpaca rows, runs the
baseline seed (2 x 4), then Stillroom through its real child process
(``python -m engine train RUN_DIR``) at the notebook's exact batching and at the
batching Stillroom chooses by default. Steady state is steps 11-40, useful
tokens are non-padding tokens, memory is torch's peak reserved. One JSON file
per variant and ``results.json`` land in ``--out``.

    python3 bench/gpu_train_bench.py --baseline PATH/baseline_unsloth.py --out DIR \
        [--variants stillroom_2x4 stillroom_default stillroom_padding_free stillroom_packed]

A device call is capped at 10 minutes: the baseline and both variants take about
8, so ``--variants`` runs the baseline with a subset (the ratios always compare
against the baseline measured in the same call).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
STEPS, WARMUP = 40, 10
LORA_PARAMS_QWEN25_15B_R16 = 18_464_768


def load_baseline(path: Path):
    spec = importlib.util.spec_from_file_location("baseline_unsloth", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_baseline(path: Path, model_dir: str, out: Path) -> dict:
    target = out / "baseline_seed.json"
    with open(out / "baseline_seed.log", "w") as log:
        subprocess.run(
            [
                sys.executable,
                str(path),
                "--steps",
                str(STEPS),
                "--model-dir",
                model_dir,
                "--tag",
                "baseline_seed_2x4",
                "--out-json",
                str(target),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=420,
        )
    return json.loads(target.read_text())


def write_data(baseline, folder: Path) -> Path:
    """The baseline's rows as an Alpaca JSONL file: the same samples Stillroom will render."""
    path = folder / "rows.jsonl"
    with open(path, "w") as handle:
        for row in baseline.make_rows(4000):
            handle.write(json.dumps(row) + "\n")
    return path


def plan_for(data: Path, model_dir: str, runs_dir: Path, name: str, variant: dict):
    from engine.plan import plan_from_dict

    return plan_from_dict(
        {
            "dataset": {"source": str(data), "eval_fraction": 0.0, "drop_duplicates": False},
            "student": {"model": model_dir, "max_seq_length": 2048, "backend": "unsloth"},
            "training": {
                "max_steps": STEPS,
                "batch_size": 2,
                "grad_accum": 4,
                "save_steps": 1000,
                **variant,
            },
            "output": {"runs_dir": str(runs_dir), "name": name},
        }
    )


def run_stillroom(plan, out: Path, tag: str) -> dict:
    """One run through the real detached child; steady-state numbers from its summary trace."""
    from engine import runs

    run_dir = runs.create_run(plan)
    runs.start(run_dir)
    last = None
    for event in runs.follow(run_dir, poll_s=1.0):
        last = event
    (out / f"{tag}.log").write_text(runs.log_tail(run_dir, 400))
    (out / f"{tag}.events.jsonl").write_text((run_dir / "events.jsonl").read_text())
    result = {"name": tag, "terminal": last.type if last else None}
    if last is None or last.type != "finished":
        result["error"] = getattr(last, "message", "") + " " + getattr(last, "log_tail", "")
        return result
    summary = json.loads((run_dir / "summary.json").read_text())
    trace = {step: (t, tokens) for step, t, tokens in summary["trace"]}
    (t0, k0), (t1, k1) = trace[WARMUP], trace[STEPS]
    steps = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in steps if e["type"] == "step"]
    result.update(
        micro_batch=summary["micro_batch"],
        grad_accum=summary["grad_accum"],
        batching=summary["batching"],
        trainable_params=summary["trainable_params"],
        sec_per_step_mean=round((t1 - t0) / (STEPS - WARMUP), 4),
        tokens_per_s_nonpad=round((k1 - k0) / (t1 - t0), 1),
        peak_reserved_GiB=round(summary["peak_reserved_mb"] / 1024, 3),
        peak_allocated_GiB=round(summary["peak_allocated_mb"] / 1024, 3),
        loss_first=losses[0],
        loss_last=losses[-1],
        runtime_s=summary["runtime_s"],
    )
    return result


# variant -> training settings: the notebook's exact batching, the batching Stillroom
# chooses by default, and the two unpadded layouts the plan offers (same samples per step)
VARIANTS = {
    "stillroom_2x4": {"rebatch": False},
    "stillroom_default": {"rebatch": True},
    "stillroom_padding_free": {"rebatch": True, "batching": "padding_free"},
    "stillroom_packed": {"rebatch": True, "batching": "packed"},
}


def checks(base: dict, results: dict) -> dict:
    """The issue's targets for whichever variants ran and finished."""
    found: dict = {}
    exact, default = results.get("stillroom_2x4", {}), results.get("stillroom_default", {})
    if "tokens_per_s_nonpad" in exact:
        found["exact_tok_ratio"] = round(
            exact["tokens_per_s_nonpad"] / base["tokens_per_s_nonpad"], 3
        )
        found["exact_mem_ratio"] = round(exact["peak_reserved_GiB"] / base["peak_reserved_GiB"], 3)
        found["exact_pass"] = found["exact_tok_ratio"] >= 0.95 and found["exact_mem_ratio"] <= 1.05
    if "tokens_per_s_nonpad" in default:
        found["default_tok_ratio"] = round(
            default["tokens_per_s_nonpad"] / base["tokens_per_s_nonpad"], 3
        )
        found["default_pass"] = found["default_tok_ratio"] >= 3.0
    for tag in ("stillroom_padding_free", "stillroom_packed"):
        if "tokens_per_s_nonpad" in results.get(tag, {}):
            found[f"{tag.removeprefix('stillroom_')}_tok_ratio"] = round(
                results[tag]["tokens_per_s_nonpad"] / base["tokens_per_s_nonpad"], 3
            )
    ran = [results[tag] for tag in VARIANTS if "trainable_params" in results.get(tag, {})]
    if ran:
        found["trainable_params_ok"] = all(
            r["trainable_params"] == LORA_PARAMS_QWEN25_15B_R16 for r in ran
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--baseline", type=Path, default=REPO.parent / "shared/gpu/baseline_unsloth.py"
    )
    parser.add_argument("--model-dir", default="/tmp/qwen2.5-1.5b-instruct-random")
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)[:2])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/stillroom-bench")
    work.mkdir(parents=True, exist_ok=True)
    baseline = load_baseline(args.baseline)
    results: dict = {"date": time.strftime("%Y-%m-%d")}
    # The baseline builds the model folder (tokenizer + random bf16 weights) on first run.
    results["baseline"] = base = run_baseline(args.baseline, args.model_dir, args.out)
    data = write_data(baseline, work)
    for tag in args.variants:
        results[tag] = run_stillroom(
            plan_for(data, args.model_dir, work / "runs", tag, VARIANTS[tag]), args.out, tag
        )
        print(json.dumps(results[tag]), flush=True)
        # Written after every variant, so a call cut off by its time limit keeps what finished.
        results["checks"] = checks(base, results)
        results["gpu"] = base.get("versions", {}).get("gpu")
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results.get("checks"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
