"""``stillroom cancel``: stop a run at the end of its current step, keeping the adapter."""

from __future__ import annotations

import argparse

from engine.i18n import _


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cancel", help=_("stop a run; its adapter is saved"))
    parser.add_argument("run", help=_("run name or folder"))
    parser.add_argument("--runs-dir", default="runs", help=_("default: runs"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs

    run_dir = runs.find_run(args.run, args.runs_dir)
    runs.cancel(run_dir)
    print(
        _("asked {run} to stop; it saves the adapter of its current step").format(run=run_dir.name)
    )
    print(_("watch it end: {command}").format(command=f"stillroom attach {run_dir}"))
    return 0
