"""``stillroom doctor``: can this machine train, and what would it run?"""

from __future__ import annotations

import argparse
import json

from engine.i18n import _
from engine.plan import Plan, load_plan

_STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def _mark(status: str) -> str:
    """A check's status in the reader's language (the JSON keeps ok/warn/fail)."""
    return {"ok": _("ok"), "warn": _("warn"), "fail": _("FAIL")}[status]


def _name(name: str) -> str:
    """A check's name in the reader's language; the JSON keeps the English name."""
    names = {
        "driver": _("driver"),
        "torch": _("torch"),
        "precision": _("precision"),
        "backend": _("backend"),
        "student model": _("student model"),
        "memory fit": _("memory fit"),
        "disk": _("disk"),
        "teacher key": _("teacher key"),
        "offline": _("offline"),
    }
    if name.startswith("gpu "):
        return _("GPU {index}").format(index=name[4:])
    return names.get(name, name)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help=_("check the GPU, driver, CUDA, backend, disk and API key"),
        description=_(
            "Check this machine for training: NVIDIA driver, CUDA and GPUs with free memory, "
            "bf16, which backend will run and why, whether the plan fits the GPU, disk space "
            "for runs and whether the teacher's API key variable is set. Exits 1 when "
            "something would stop a run."
        ),
    )
    parser.add_argument("plan", nargs="?", help=_("plan file to check against (default plan)"))
    parser.add_argument(
        "--json",
        action="store_true",
        help=_("print the checks as JSON (keys and statuses stay English)"),
    )
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
            style, name = _STYLES[check.status], _name(check.name)
            table.add_row(f"[{style}]{_mark(check.status)}[/]", f"[bold]{name}[/]", detail)
        Console(highlight=False).print(table)
    return 1 if any(check.status == "fail" for check in checks) else 0
