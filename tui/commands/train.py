"""``stillroom train``: start a run detached from the terminal, then follow it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.errors import UserError
from engine.i18n import _


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help=_("train a plan headless (survives a closed terminal); or resume a run"),
        description=_(
            "Start training PLAN in its own process and follow it live. Ctrl-C detaches "
            "(training goes on); `stillroom attach RUN` comes back, `stillroom cancel RUN` stops "
            "it and keeps the adapter. --resume continues a crashed or killed run from its "
            "newest whole checkpoint, to the planned number of steps."
        ),
    )
    parser.add_argument("plan", nargs="?", help=_("plan file (TOML)"))
    parser.add_argument("--detach", action="store_true", help=_("return at once; do not follow"))
    parser.add_argument(
        "--probe",
        action="store_true",
        help=_("run 5 steps of the real plan and report peak GPU memory and step time"),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help=_("with --probe: follow on stderr, then print the probe's figures as one JSON object"),
    )
    parser.add_argument("--resume", metavar="RUN", help=_("continue this run instead"))
    parser.add_argument(
        "--runs-dir", default="runs", help=_("where --resume looks (default: runs)")
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs
    from engine.plan import load_plan

    if args.json and not args.probe:
        raise UserError(_("--json goes with --probe"), hint="`stillroom train PLAN --probe --json`")
    if args.resume:
        if args.plan or args.probe:
            raise UserError(_("--resume takes a run, not a plan or --probe"))
        run_dir = runs.prepare_resume(args.resume, args.runs_dir)
    elif args.plan:
        plan = load_plan(args.plan)
        run_dir = runs.create_run(plan, suffix="-probe" if args.probe else "")
    else:
        raise UserError(
            _("give a plan file, or --resume RUN"), hint="`stillroom plan --defaults > plan.toml`"
        )
    trainer = runs.start(run_dir, probe=args.probe)
    where = sys.stderr if args.json else sys.stdout
    print(_("run directory: {path}").format(path=run_dir), flush=True, file=where)
    if args.detach:
        print(_("follow it: {command}").format(command=f"stillroom attach {run_dir}"))
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
    peak_text = (
        _("{size} GB peak reserved").format(size=f"{peak / 1024:.2f}")
        if peak
        else _("no GPU memory measured (CPU)")
    )
    step_text = f"{step_s:.2f} s/step" if step_s else _("step time unknown")
    print(
        _("probe: {peak}, {step} at {micro_batch} x {grad_accum}").format(
            peak=peak_text,
            step=step_text,
            micro_batch=summary["micro_batch"],
            grad_accum=summary["grad_accum"],
        )
    )
    full_steps = summary.get("planned_steps")
    if step_s and full_steps:
        from tui.wording import duration

        print(
            _("the full run of {steps} steps would take about {time}").format(
                steps=full_steps, time=duration(step_s * full_steps)
            )
        )
