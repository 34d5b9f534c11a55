"""``stillroom attach``: follow a run live (the newest running one by default)."""

from __future__ import annotations

import argparse

from engine.errors import UserError
from engine.i18n import _


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("attach", help=_("follow a run live; Ctrl-C detaches again"))
    parser.add_argument("run", nargs="?", help=_("run name or folder (default: the live one)"))
    parser.add_argument("--runs-dir", default="runs", help=_("default: runs"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs
    from tui.follow import follow_run

    if args.run:
        run_dir = runs.find_run(args.run, args.runs_dir)
    else:
        run_dir = runs.latest_live_run(args.runs_dir)
        if run_dir is None:
            raise UserError(_("no run is training now"), hint=_("`stillroom runs` lists them all."))
    return follow_run(run_dir)
