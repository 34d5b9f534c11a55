"""``stillroom runs``: every run with its state, step and last loss."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("runs", help="list runs: state, step, last loss")
    parser.add_argument("--runs-dir", default="runs", help="default: runs")
    parser.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.runs import list_runs

    found = list_runs(args.runs_dir)
    if args.json:
        print(json.dumps([r.to_dict() for r in found], indent=2))
        return 0
    if not found:
        print(f"no runs in {args.runs_dir}/")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for column in ("run", "state", "step", "loss", "backend"):
        table.add_column(column)
    for r in found:
        step = f"{r.step}/{r.max_steps}" if r.max_steps else str(r.step)
        loss = f"{r.loss:.4f}" if r.loss is not None else "-"
        table.add_row(r.name, r.state, step, loss, r.backend)
    Console().print(table)
    return 0
