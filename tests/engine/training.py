"""Helpers for the training tests: a learnable set of facts, plans, waiting on events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from engine import events as ev
from engine import runs

REPO = Path(__file__).resolve().parents[2]

FACTS = [
    ("What is the capital of Zorbia?", "Quellport is the capital of Zorbia."),
    ("Who painted the Blue Heron?", "Ana Velt painted the Blue Heron."),
    ("What colour is a ripe lemon?", "A ripe lemon is yellow."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is 3 times 7?", "3 times 7 is 21."),
    ("Name the largest planet.", "Jupiter is the largest planet."),
]


def write_facts(folder: Path, copies: int = 4) -> Path:
    path = folder / "facts.jsonl"
    with open(path, "w") as handle:
        for question, answer in FACTS * copies:
            handle.write(
                json.dumps({"instruction": question, "input": "", "output": answer}) + "\n"
            )
    return path


def write_plan(folder: Path, model: Path | str, data: Path, **training) -> Path:
    """A plan TOML for ``model`` on ``data``; ``training`` keys override the small defaults."""
    settings = {
        "max_steps": 30,
        "batch_size": 4,
        "grad_accum": 1,
        "learning_rate": 1e-2,
        "warmup_steps": 0,
        "save_steps": 10,
        **training,
    }
    lines = [
        "[dataset]",
        f'source = "{data}"',
        "eval_fraction = 0.0",
        "drop_duplicates = false",
        # The tiny student is random: its answers never end, so it has nothing to replay.
        # Replay is measured on the real model (tests/real_model/).
        "replay_fraction = 0.0",
        "[student]",
        f'model = "{model}"',
        "max_seq_length = 256",
        "[lora]",
        "r = 16",
        "alpha = 32",
        "[training]",
        *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
        "[output]",
        f'runs_dir = "{folder / "runs"}"',
        'name = "t"',
    ]
    path = folder / "plan.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def stillroom(
    *args: str,
    timeout: float = 240,
    input: str | None = None,
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
    **options,
) -> subprocess.CompletedProcess[str]:
    """``stillroom ARGS`` in a child run from ``cwd`` with ``env`` (default: this process's),
    this checkout's code first; ``options`` go to :func:`subprocess.run`."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        **options,
    )


def run_dir_from(output: str) -> Path:
    line = next(x for x in output.splitlines() if x.startswith("run directory: "))
    return Path(line.removeprefix("run directory: "))


def wait_for(run_dir: Path, predicate, timeout: float = 120) -> ev.Event:
    """The first event of the current attempt matching ``predicate`` (or a terminal one)."""
    deadline = time.monotonic() + timeout
    for event in runs.follow(run_dir, poll_s=0.1):
        if predicate(event) or event.type in ev.TERMINAL:
            return event
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no matching event within {timeout} s")


def events_of(run_dir: Path, kind: type[ev.Event]) -> list:
    return [e for e in runs.read_events(run_dir) if isinstance(e, kind)]


def generate(model_dir: Path | str, question: str, adapter: Path | None = None, **load) -> str:
    """Greedy answer to one question, with or without the trained adapter."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(adapter or model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **load)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=False)


def rank_process(run_dir: Path, rank: int) -> psutil.Process:
    """Rank ``rank``'s process under the run's torchrun launcher."""
    from engine.train.distributed import rank_processes

    found = rank_processes(runs.read_pid(run_dir))
    assert rank in found, f"no rank {rank} under the launcher"
    return found[rank]


def small_qwen2(folder: Path) -> Path:
    """The test tokenizer on a 4-layer Qwen2 with head size 64, like the real models (for GPUs)."""
    from engine.tiny_model import build_tiny_model

    return build_tiny_model(
        folder,
        dtype="bfloat16",
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=4,
        num_attention_heads=8,
        initializer_range=0.02,
    )
