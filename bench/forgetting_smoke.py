"""Replay and retention through the real CLI, on the GPU's Unsloth path, without weights.

The device has no network and the tree that reaches it is capped far below SmolLM2's
270 MB, so the student is SmolLM2-135M-Instruct's own architecture and tokenizer with
random weights (built here from its config.json). Its answers mean nothing, so recall and
retention figures need the real weights there; this checks that the path runs: the
replay rows (the real SmolLM2's answers, made on a CPU and seeded into the cache the way a
second run reads them) are mixed into an Unsloth training run, eval measures retention
with Unsloth generation, and `stillroom runs --json` lists the headline.

    python bench/forgetting_smoke.py SMOLLM2_FILES REPLAY_ANSWERS.json OUT [--backend hf]
        [--layers N]

SMOLLM2_FILES holds config.json, tokenizer.json, tokenizer_config.json and
chat_template.jinja; REPLAY_ANSWERS.json is a replay cache file made by a CPU run.
Writes OUT/forgetting_smoke.json and the two commands' output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FACTS = [
    ("What is the capital of Zorbia?", "The capital of Zorbia is Quellport."),
    ("Who founded the town of Oskeld?", "Brenna Holt founded the town of Oskeld."),
    ("Which metal is mined in Ruskar?", "Velmite is the metal mined in Ruskar."),
    ("What language is spoken in Ombria?", "The people of Ombria speak Tellic."),
]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def build_student(files: Path, folder: Path, layers: int | None) -> Path:
    """SmolLM2-135M's architecture and tokenizer, random weights, saved as bf16."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(files)
    if layers:
        config.num_hidden_layers = layers
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(files / name, folder / name)
    shutil.copy(files / "config.json", folder / "source-config.json")
    return folder


def seed_replay(student: Path, answers: Path, backend: str, four_bit: bool) -> Path:
    """The CPU run's replay answers, under the key this student and backend look up."""
    from engine.replay import BUDGET
    from engine.retention import cache_file, cache_key

    key = cache_key(str(student), {"backend": backend, "4bit": four_bit}, BUDGET)
    path = cache_file(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(answers, path)
    return path


def cli(out: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True, cwd=REPO
    )
    (out / f"{name}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr[-20000:])
    return done, round(time.monotonic() - started, 1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", type=Path)
    parser.add_argument("answers", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--backend", default="unsloth", choices=["unsloth", "hf"])
    parser.add_argument("--layers", type=int, default=None)
    args = parser.parse_args()
    out = args.out.resolve()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "forgetting-smoke"
    shutil.rmtree(work, ignore_errors=True)
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    four_bit = args.backend == "unsloth"
    result: dict = {"backend": args.backend, "4bit": four_bit}

    started = time.monotonic()
    student = build_student(args.files, work / "student", args.layers)
    result["build_s"] = round(time.monotonic() - started, 1)
    seed_replay(student, args.answers, args.backend, four_bit)
    data = work / "facts.jsonl"
    data.write_text(
        "".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in FACTS * 8)
    )
    plan = work / "plan.toml"
    plan.write_text(
        f'[dataset]\nsource = "{data}"\neval_fraction = 0.0\ndrop_duplicates = false\n'
        "replay_fraction = 0.2\n"
        f'[student]\nmodel = "{student}"\nmax_seq_length = 256\n'
        f'load_in_4bit = {str(four_bit).lower()}\nbackend = "{args.backend}"\n'
        "[training]\nmax_steps = 20\nbatch_size = 4\ngrad_accum = 1\nlearning_rate = 1e-3\n"
        'warmup_steps = 0\nsave_steps = 1000\noptimizer = "adamw_torch"\n'
        f'[output]\nruns_dir = "{work / "runs"}"\nname = "smoke"\n'
    )
    trained, result["train_s"] = cli(out, "train", "train", str(plan))
    result["train_rc"] = trained.returncode
    result["replay_line"] = [line for line in trained.stdout.splitlines() if "replay" in line]
    run_dir = next(
        (line.removeprefix("run directory: ") for line in trained.stdout.splitlines()
         if line.startswith("run directory: ")), None,
    )  # fmt: skip
    if trained.returncode == 0 and run_dir:
        evaluated, result["eval_s"] = cli(out, "eval", "eval", run_dir, "--max-new-tokens", "16")
        result["eval_rc"] = evaluated.returncode
        report_file = Path(run_dir) / "eval" / "report.json"
        if report_file.is_file():
            report = json.loads(report_file.read_text())
            kept = report.get("retention") or {}
            result["retention"] = {k: kept.get(k) for k in ("prompts", "kept", "share", "forgetting", "left_out")}  # fmt: skip
            result["backend_used"] = report.get("backend")
        listed, _ = cli(out, "runs", "runs", "--json", "--runs-dir", str(work / "runs"))
        result["runs_eval"] = [r.get("eval") for r in json.loads(listed.stdout or "[]")]
        events = Path(run_dir) / "events.jsonl"
        result["events_tail"] = events.read_text().splitlines()[-3:] if events.is_file() else []
    (out / "forgetting_smoke.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result.get("eval_rc") == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
