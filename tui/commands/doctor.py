"""``stillroom doctor``: can this machine train, and what would it run?"""

from __future__ import annotations

import argparse
import json

from engine.plan import Plan, load_plan

_MARKS = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the GPU, driver, CUDA, backend, disk and API key",
        description=(
            "Check this machine for training: NVIDIA driver, CUDA and GPUs with free memory, "
            "bf16, which backend will run and why, whether the plan fits the GPU, disk space "
            "for runs and whether the teacher's API key variable is set. Exits 1 when "
            "something would stop a run."
        ),
    )
    parser.add_argument("plan", nargs="?", help="plan file to check against (default plan)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.doctor import as_json, diagnose

    plan = load_plan(args.plan) if args.plan else Plan()
    checks = diagnose(plan)
    if args.json:
        print(json.dumps(as_json(checks), indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        for check in checks:
            detail = check.detail + (f"\n[dim]{check.hint}[/]" if check.hint else "")
            table.add_row(_MARKS[check.status], f"[bold]{check.name}[/]", detail)
        Console(highlight=False).print(table)
    return 1 if any(check.status == "fail" for check in checks) else 0
