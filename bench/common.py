"""What the GPU benches share: their command line and one run of a plan through the real child."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WARMUP = 10


def gpu_bench_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every GPU bench takes: the baseline script, the student's folder, results."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--baseline", type=Path, default=REPO.parent / "shared/gpu/baseline_unsloth.py"
    )
    parser.add_argument("--model-dir", default="/tmp/qwen2.5-1.5b-instruct-random")
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    return parser


def gib(mb: float | None) -> float | None:
    return round(mb / 1024, 3) if mb is not None else None  # None: no CUDA (a CPU dry run)


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` set in this process (and the runs it starts) while inside, then put back."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def run_plan(plan, out: Path, tag: str, last: int, env: dict | None = None) -> dict:
    """Train ``plan`` through the real detached child; steady state is steps WARMUP+1..last.

    The run's log and events land in ``out``; the result holds the summary's figures, or
    ``error`` with the terminal event's message when the run did not finish.
    """
    return result_of(start_plan(plan, env), out, tag, last)


def start_plan(plan, env: dict | None = None) -> Path:
    """The run's folder, its detached child started with ``env`` added to this environment."""
    from engine import runs

    run_dir = runs.create_run(plan)
    with environment(env or {}):
        runs.start(run_dir)
    return run_dir


def result_of(run_dir: Path, out: Path, tag: str, last: int) -> dict:
    """:func:`run_plan`'s result, once the run started in ``run_dir`` has ended."""
    from engine import runs

    terminal = None
    for event in runs.follow(run_dir, poll_s=1.0):
        terminal = event
    (out / f"{tag}.log").write_text(runs.log_tail(run_dir, 400))
    (out / f"{tag}.events.jsonl").write_text((run_dir / "events.jsonl").read_text())
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    started = next((e for e in events if e["type"] == "started"), {})
    result: dict = {"name": tag, "terminal": terminal.type if terminal else None}
    result["device"] = started.get("device")
    if terminal is None or terminal.type != "finished":
        message = f"{getattr(terminal, 'message', '')} {getattr(terminal, 'log_tail', '')}"
        result["error"] = message[-3000:]
        return result
    summary = json.loads((run_dir / "summary.json").read_text())
    trace = {step: (t, tokens) for step, t, tokens in summary["trace"]}
    (t0, k0), (t1, k1) = trace[WARMUP], trace[last]
    losses = [e["loss"] for e in events if e["type"] == "step"]
    mfus = [e.get("mfu") for e in events if e["type"] == "step" and e["step"] <= last]
    logs = [e["line"] for e in events if e["type"] == "log"]
    result.update(
        micro_batch=summary["micro_batch"],
        grad_accum=summary["grad_accum"],
        batching=summary["batching"],
        batches=next((x for x in logs if x.startswith("batches:")), None),
        launch=next((x for x in logs if "torch.distributed.run" in x), None),
        token_balanced=any("UNSLOTH_TOKEN_BALANCE" in x for x in logs),
        checkpointing=summary.get("checkpointing"),
        checkpointing_reason=next((x for x in logs if "checkpointing" in x), None),
        trainable_params=summary["trainable_params"],
        optimizer=summary.get("optimizer"),
        steps=summary["steps"],
        steady_steps=f"{WARMUP + 1}-{last}",
        sec_per_step_mean=round((t1 - t0) / (last - WARMUP), 4),
        tokens_per_s_nonpad=round((k1 - k0) / (t1 - t0), 1),
        mfu_shown_last=mfus[-1] if mfus else None,
        peak_reserved_GiB=gib(summary["peak_reserved_mb"]),
        peak_allocated_GiB=gib(summary["peak_allocated_mb"]),
        largest_batch_tokens=summary.get("largest_batch_tokens"),
        pad_multiple=summary.get("pad_multiple"),
        batch_lengths=summary.get("batch_lengths"),
        overhead=summary.get("overhead"),
        loss_first=losses[0],
        loss_last=losses[-1],
        loss_last10_mean=round(sum(losses[-10:]) / len(losses[-10:]), 5),
        runtime_s=summary["runtime_s"],
    )
    return result
