"""``stillroom train``: start a run detached from the terminal, then follow it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a plan headless (survives a closed terminal); or resume a run",
        description=(
            "Start training PLAN in its own process and follow it live. Ctrl-C detaches "
            "(training goes on); `stillroom attach RUN` comes back, `stillroom cancel RUN` stops "
            "it and keeps the adapter. --resume continues a crashed or killed run from its "
            "newest whole checkpoint, to the planned number of steps."
        ),
    )
    parser.add_argument("plan", nargs="?", help="plan file (TOML)")
    parser.add_argument("--detach", action="store_true", help="return at once; do not follow")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run 5 steps of the real plan and report peak GPU memory and step time",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --probe: follow on stderr, then print the probe's figures as one JSON object",
    )
    parser.add_argument("--resume", metavar="RUN", help="continue this run instead")
    parser.add_argument("--runs-dir", default="runs", help="where --resume looks (default: runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs
    from engine.plan import load_plan

    if args.json and not args.probe:
        raise UserError("--json goes with --probe", hint="`stillroom train PLAN --probe --json`")
    if args.resume:
        if args.plan or args.probe:
            raise UserError("--resume takes a run, not a plan or --probe")
        run_dir = runs.prepare_resume(args.resume, args.runs_dir)
    elif args.plan:
        plan = load_plan(args.plan)
        run_dir = runs.create_run(plan, suffix="-probe" if args.probe else "")
    else:
        raise UserError(
            "give a plan file, or --resume RUN", hint="`stillroom plan --defaults > plan.toml`"
        )
    trainer = runs.start(run_dir, probe=args.probe)
    print(f"run directory: {run_dir}", flush=True, file=sys.stderr if args.json else sys.stdout)
    if args.detach:
        print(f"follow it: stillroom attach {run_dir}")
        return 0
    from tui.follow import follow_run

    if args.json:
        from rich.console import Console

        code = follow_run(run_dir, Console(stderr=True), attempt=trainer.attempt)
        print(json.dumps(_probe_figures(run_dir), indent=2))
        return code
    code = follow_run(run_dir, attempt=trainer.attempt)
    if args.probe:
        _print_probe(run_dir)
    return code


def _probe_figures(run_dir: Path) -> dict:
    """The probe's summary (peak memory, step time, batch shape) plus the full run's time."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {"run": str(run_dir), "error": "the probe left no summary: see its train.log"}
    step_s, full_steps = summary.get("step_s_median"), summary.get("planned_steps")
    full = round(step_s * full_steps, 1) if step_s and full_steps else None
    return {"run": str(run_dir), **summary, "full_run_s": full}


def _print_probe(run_dir: Path) -> None:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return
    peak = summary.get("peak_reserved_mb")
    step_s = summary.get("step_s_median")
    peak_text = f"{peak / 1024:.2f} GB peak reserved" if peak else "no GPU memory measured (CPU)"
    step_text = f"{step_s:.2f} s/step" if step_s else "step time unknown"
    print(f"probe: {peak_text}, {step_text} at {summary['micro_batch']} x {summary['grad_accum']}")
    full_steps = summary.get("planned_steps")
    if step_s and full_steps:
        from tui.wording import duration

        print(
            f"the full run of {full_steps} steps would take about {duration(step_s * full_steps)}"
        )
