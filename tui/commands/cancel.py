"""``stillroom cancel``: stop a run at the end of its current step, keeping the adapter."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cancel", help="stop a run; its adapter is saved")
    parser.add_argument("run", help="run name or folder")
    parser.add_argument("--runs-dir", default="runs", help="default: runs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs

    run_dir = runs.find_run(args.run, args.runs_dir)
    runs.cancel(run_dir)
    print(f"asked {run_dir.name} to stop; it saves the adapter of its current step")
    print(f"watch it end: stillroom attach {run_dir}")
    return 0
